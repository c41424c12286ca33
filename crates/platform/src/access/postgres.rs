//! The service's own Postgres role and database (the `postgres` feature): what
//! `<service> bootstrap --postgres-admin-url` does.

use anyhow::{Context as _, bail};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::decoded;

/// The role, password and database a service's `database.url` names.
struct Owner {
    role: String,
    password: Option<String>,
    database: String,
}

impl Owner {
    fn from_url(service_url: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(service_url).context("parsing the service's database URL")?;
        let role = decoded(url.username())?;
        let database = decoded(url.path().trim_start_matches('/'))?;
        if role.is_empty() || database.is_empty() {
            bail!("the service's database URL must name a user and a database");
        }
        let password = url.password().map(decoded).transpose()?;
        Ok(Self { role, password, database })
    }
}

/// Makes the role `service_url` names the owner of the database it names, creating either
/// if missing, as the admin at `admin_url` (a superuser, or the admin user of RDS or Cloud
/// SQL, which have CREATEROLE and CREATEDB). Idempotent, so it runs before every migration.
///
/// The role may log in with the URL's password (none: trust or peer auth only) and do
/// nothing else: no SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS, no
/// membership in another role, at most `connection_limit` connections. Its database is
/// closed to PUBLIC, so no other service's role can connect to it. Tables, views and
/// sequences the admin created there (when services still connected as the admin) become
/// the role's.
pub async fn bootstrap_database(
    admin_url: &str,
    service_url: &str,
    connection_limit: Option<u32>,
) -> anyhow::Result<()> {
    let owner = Owner::from_url(service_url)?;
    let admin_options: PgConnectOptions = admin_url.parse().context("parsing the admin URL")?;
    let admin = one_connection(admin_options.clone()).await.context("connecting as the admin")?;

    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(&owner.role)
        .fetch_one(&admin)
        .await?;
    let limit = connection_limit.map_or(-1, i64::from).to_string();
    // No SUPERUSER, REPLICATION or BYPASSRLS clause: only a superuser may name those in ALTER
    // ROLE, and the cloud admins are not superusers. New roles lack them; old ones are checked.
    execute(
        &admin,
        "%s ROLE %I LOGIN NOCREATEDB NOCREATEROLE CONNECTION LIMIT %s PASSWORD %L",
        &[Some(if exists { "ALTER" } else { "CREATE" }), Some(&owner.role), Some(&limit), owner.password.as_deref()],
    )
    .await?;
    check_role(&admin, &owner.role).await?;

    // A non-superuser may only hand a database to a role it is a member of.
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetch_one(&admin).await?;
    if !superuser {
        execute(&admin, "GRANT %I TO CURRENT_USER", &[Some(&owner.role)]).await?;
    }

    let database_owner: Option<String> =
        sqlx::query_scalar("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1")
            .bind(&owner.database)
            .fetch_optional(&admin)
            .await?;
    let names = [Some(owner.database.as_str()), Some(owner.role.as_str())];
    match database_owner {
        None => execute(&admin, "CREATE DATABASE %I OWNER %I", &names).await?,
        Some(current) if current != owner.role => execute(&admin, "ALTER DATABASE %I OWNER TO %I", &names).await?,
        Some(_) => {}
    }
    execute(&admin, "REVOKE ALL ON DATABASE %I FROM PUBLIC", &names[..1]).await?;
    admin.close().await;

    let inside = one_connection(admin_options.database(&owner.database))
        .await
        .context("connecting to the service's database as the admin")?;
    adopt_objects(&inside, &owner.role).await?;
    inside.close().await;
    Ok(())
}

/// A pool of one connection: `&PgPool` is an executor for every lifetime, which keeps the
/// bootstrap's future `Send` where a borrowed `&mut PgConnection` trips rustc's check.
async fn one_connection(options: PgConnectOptions) -> sqlx::Result<PgPool> {
    PgPoolOptions::new().max_connections(1).connect_with(options).await
}

/// Fails when `role` holds an attribute or a membership that reaches beyond its database
/// (a Cloud SQL user made through the API is a member of `cloudsqlsuperuser`, for one).
async fn check_role(admin: &PgPool, role: &str) -> anyhow::Result<()> {
    let (elevated, memberships): (bool, Option<String>) = sqlx::query_as(
        "SELECT r.rolsuper OR r.rolreplication OR r.rolbypassrls, \
                (SELECT string_agg(pg_get_userbyid(m.roleid), ', ') FROM pg_auth_members m WHERE m.member = r.oid) \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(role)
    .fetch_one(admin)
    .await?;
    if elevated {
        bail!("role {role} has SUPERUSER, REPLICATION or BYPASSRLS; a superuser must remove them");
    }
    if let Some(memberships) = memberships {
        bail!(
            "role {role} is a member of {memberships}; revoke that (or use another role) so it reaches its own database only"
        );
    }
    Ok(())
}

/// Hands `role` the tables, views and sequences of schema `public` that someone else owns.
/// Sequences that belong to a column follow their table.
async fn adopt_objects(inside: &PgPool, role: &str) -> anyhow::Result<()> {
    let objects: Vec<(String, String)> = sqlx::query_as(
        "SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' \
                WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.oid::regclass::text \
         FROM pg_class c \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v', 'm') \
           AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = $1) \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype IN ('a', 'i'))",
    )
    .bind(role)
    .fetch_all(inside)
    .await?;
    for (kind, name) in &objects {
        execute(inside, "ALTER %s %s OWNER TO %I", &[Some(kind), Some(name), Some(role)]).await?;
    }
    Ok(())
}

/// Runs the statement `format(template, args...)` builds: Postgres quotes identifiers (`%I`)
/// and literals (`%L`) itself. Errors name the template, never the arguments (a password).
async fn execute(connection: &PgPool, template: &str, args: &[Option<&str>]) -> anyhow::Result<()> {
    let statement: String = sqlx::query_scalar("SELECT format($1, VARIADIC $2::text[])")
        .bind(template)
        .bind(args)
        .fetch_one(connection)
        .await
        .with_context(|| format!("building `{template}`"))?;
    sqlx::raw_sql(&statement).execute(connection).await.with_context(|| format!("running `{template}`"))?;
    Ok(())
}
