//! Each service's own Postgres role and Redis user, against the real servers (finding 9 of
//! issue 16).

use sqlx::{Connection as _, PgConnection};
use ticketing_platform::access::{REDIS_KEYSPACES, bootstrap_database, bootstrap_redis};
use ticketing_platform::db::DatabaseConfig;
use ticketing_platform::redis::RedisConfig;
use ticketing_testkit::{TestDb, database_url, redis_url, unique};

/// `url` with its database replaced by `database`.
fn on_database(url: &str, database: &str) -> String {
    let mut url = url::Url::parse(url).expect("a URL");
    url.set_path(database);
    url.into()
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned())
}

#[tokio::test]
async fn a_service_role_owns_its_database_and_reaches_no_other() {
    let (own, other) = (TestDb::empty().await, TestDb::empty().await);

    let mut connection = PgConnection::connect(&own.config.url).await.expect("the role connects to its database");
    let (superuser, createdb, createrole): (bool, bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut connection)
            .await
            .expect("read own attributes");
    assert_eq!((superuser, createdb, createrole), (false, false, false));
    let owner: String =
        sqlx::query_scalar("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()")
            .fetch_one(&mut connection)
            .await
            .expect("read the database's owner");
    assert_eq!(owner, own.name());
    sqlx::query("CREATE TABLE mine (id int)").execute(&mut connection).await.expect("the owner creates tables");
    let refused = sqlx::query(&format!(r#"SET ROLE "{}""#, other.name())).execute(&mut connection).await;
    assert_eq!(
        refused.err().as_ref().and_then(sqlstate).as_deref(),
        Some("42501"),
        "SET ROLE to another service's role"
    );

    let refused = PgConnection::connect(&on_database(&own.config.url, other.name())).await;
    assert_eq!(
        refused.err().as_ref().and_then(sqlstate).as_deref(),
        Some("42501"),
        "a role connects to another service's database"
    );
}

#[tokio::test]
async fn bootstrap_hands_the_role_what_the_admin_created_and_can_run_again() {
    let db = TestDb::empty().await;
    // What a deployment looks like whose services migrated as the admin.
    let mut admin = PgConnection::connect(&on_database(&database_url(), db.name())).await.expect("admin connects");
    sqlx::query("CREATE TABLE legacy (id bigserial PRIMARY KEY, note text)").execute(&mut admin).await.expect("create");
    admin.close().await.ok();
    let insert = "INSERT INTO legacy (note) VALUES ('x')";
    let refused = sqlx::query(insert).execute(&db.pool).await;
    assert_eq!(
        refused.err().as_ref().and_then(sqlstate).as_deref(),
        Some("42501"),
        "the admin's table before bootstrap"
    );

    bootstrap_database(&database_url(), &db.config.url, Some(20)).await.expect("bootstrap an existing database");

    sqlx::query(insert).execute(&db.pool).await.expect("the role writes the adopted table and its sequence");
    let limit: i32 = sqlx::query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user")
        .fetch_one(&db.pool)
        .await
        .expect("read the limit");
    assert_eq!(limit, 20);
}

#[tokio::test]
async fn bootstrap_refuses_a_role_that_reaches_further() {
    let db = TestDb::empty().await;
    let mut admin = PgConnection::connect(&database_url()).await.expect("admin connects");
    sqlx::query(&format!(r#"GRANT pg_read_all_data TO "{}""#, db.name())).execute(&mut admin).await.expect("grant");

    let err = bootstrap_database(&database_url(), &db.config.url, None).await.expect_err("a role with a membership");

    assert!(format!("{err:#}").contains("is a member of pg_read_all_data"), "{err:#}");
}

#[tokio::test]
async fn a_role_that_may_not_create_its_database_is_told_to_bootstrap() {
    let db = TestDb::empty().await;
    let mut config = DatabaseConfig::for_service("test");
    config.url = on_database(&db.config.url, &format!("missing_{}", unique()));

    let err = ticketing_platform::db::migrate(&config, &ticketing_platform::db::migrator(None))
        .await
        .expect_err("migrate a missing database without CREATEDB");

    assert!(format!("{err:#}").contains("run `<service> bootstrap` as an admin"), "{err:#}");
}

#[tokio::test]
async fn a_service_role_migrates_its_own_database() {
    let db = TestDb::empty().await;

    ticketing_platform::db::migrate(&db.config, &ticketing_platform::db::migrator(None)).await.expect("migrate");

    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE tableowner = current_user")
        .fetch_one(&db.pool)
        .await
        .expect("count own tables");
    assert!(tables > 0, "the platform's tables belong to the role");
}

/// The three Redis users of one deployment, deleted (with their keys) when dropped.
struct RedisUsers {
    prefix: String,
    users: Vec<(&'static str, String, String)>,
}

impl RedisUsers {
    /// As `<service> bootstrap --redis-admin-url` makes them.
    async fn create() -> Self {
        let prefix = format!("test:{}:", unique());
        let mut users = Vec::new();
        for (service, _) in REDIS_KEYSPACES {
            let (user, password) = (format!("test_{}", unique()), unique());
            let config = RedisConfig { url: user_url(&user, &password), key_prefix: prefix.clone(), ca_file: None };
            users.push((*service, user, password));
            bootstrap_redis(&redis_url(), service, &config).await.expect("bootstrap the service's user");
        }
        Self { prefix, users }
    }

    fn connect(&self, service: &str) -> redis::Connection {
        let (_, user, password) = self.users.iter().find(|(s, ..)| *s == service).expect("a user");
        redis::Client::open(user_url(user, password))
            .and_then(|c| c.get_connection())
            .expect("log in as the service's user")
    }
}

fn user_url(user: &str, password: &str) -> String {
    let mut url = url::Url::parse(&redis_url()).expect("REDIS_URL");
    url.set_username(user).unwrap();
    url.set_password(Some(password)).unwrap();
    url.into()
}

impl Drop for RedisUsers {
    fn drop(&mut self) {
        let mut admin = admin_redis();
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}*", self.prefix)).query(&mut admin).unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut admin);
        }
        for (_, user, _) in &self.users {
            let _: redis::RedisResult<()> = redis::cmd("ACL").arg("DELUSER").arg(user).query(&mut admin);
        }
    }
}

fn admin_redis() -> redis::Connection {
    redis::Client::open(redis_url().as_str()).and_then(|c| c.get_connection()).expect("connect to Redis (REDIS_URL)")
}

fn refused<T: std::fmt::Debug>(result: redis::RedisResult<T>, what: &str) {
    let e = result.expect_err(what);
    assert_eq!(e.code(), Some("NOPERM"), "{what}: {e}");
}

#[tokio::test]
async fn each_service_user_reaches_its_own_keys_only() {
    let users = RedisUsers::create().await;
    for (service, _) in REDIS_KEYSPACES {
        let mut connection = users.connect(service);
        for (owner, namespaces) in REDIS_KEYSPACES {
            for namespace in *namespaces {
                let key = format!("{}{namespace}x", users.prefix);
                let set = redis::cmd("SET").arg(&key).arg(*service).query::<()>(&mut connection);
                let read = redis::cmd("GET").arg(&key).query::<Option<String>>(&mut connection);
                // A script reaches no further than its caller.
                let script = redis::cmd("EVAL")
                    .arg("return redis.call('GET', KEYS[1])")
                    .arg(1)
                    .arg(&key)
                    .query::<Option<String>>(&mut connection);
                if owner == service {
                    set.unwrap_or_else(|e| panic!("{service} writes {key}: {e}"));
                    assert_eq!(
                        read.unwrap_or_else(|e| panic!("{service} reads {key}: {e}")).as_deref(),
                        Some(*service)
                    );
                    script.unwrap_or_else(|e| panic!("{service}'s script reads {key}: {e}"));
                } else {
                    refused(set, &format!("{service} writes {owner}'s {key}"));
                    refused(read, &format!("{service} reads {owner}'s {key}"));
                    refused(script, &format!("{service}'s script reads {owner}'s {key}"));
                }
            }
        }
        let outside = format!("another:{}", REDIS_KEYSPACES[0].1[0]);
        refused(redis::cmd("SET").arg(&outside).arg(1).query::<()>(&mut connection), "a key outside the prefix");
        refused(redis::cmd("KEYS").arg("*").query::<Vec<String>>(&mut connection), "KEYS");
        refused(redis::cmd("FLUSHALL").query::<()>(&mut connection), "FLUSHALL");
        refused(redis::cmd("CONFIG").arg("GET").arg("*").query::<Vec<String>>(&mut connection), "CONFIG GET");
        refused(redis::cmd("ACL").arg("LIST").query::<Vec<String>>(&mut connection), "ACL LIST");
        refused(redis::cmd("SCRIPT").arg("FLUSH").query::<()>(&mut connection), "SCRIPT FLUSH");
        refused(redis::cmd("PUBLISH").arg("channel").arg("x").query::<i64>(&mut connection), "PUBLISH");
        let scan = redis::cmd("SCAN").arg(0).query::<(u64, Vec<String>)>(&mut connection);
        if *service == "inventory" {
            scan.expect("inventory rebuilds events with SCAN");
        } else {
            refused(scan, &format!("{service} lists key names with SCAN"));
        }
        redis::cmd("INFO").arg("memory").query::<String>(&mut connection).expect("INFO for the memory gauges");
    }
}
