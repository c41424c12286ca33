//! Wires identity's adapters, use cases and transports into a runnable service.

use std::sync::Arc;

use axum::routing::get;
use ticketing_platform::auth::Verifier;
use ticketing_platform::sealing::Sealer;
use ticketing_platform::{App, Running, db, readiness};
use ticketing_proto::audit::v1::audit_server::AuditServer;
use ticketing_proto::identity::v1::identity_server::IdentityServer;
use ticketing_proto::topics;
use tonic::server::NamedService as _;

use crate::adapters::hasher::Hasher;
use crate::adapters::keys::KeyRing;
use crate::adapters::oidc::{PendingLogins, Providers};
use crate::adapters::refresh::RefreshTokens;
use crate::adapters::throttle::LoginThrottle;
use crate::config::Config;
use crate::events::consume::{self as audit_events, AuditEvents};
use crate::grpc::Api;
use crate::grpc::audit::AuditApi;
use crate::service::audit::AuditLog;
use crate::service::{Identity, Parts};
use crate::workers::audit_retention::{self, AuditRetention};
use crate::workers::key_reload::{self, KeyReload};

/// Migrates (if configured), connects and binds the service; call `run_until_stopped` on the result.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;
    let redis = ticketing_platform::redis::connect(&config.redis).await?;
    let topic = config.kafka.topic(topics::IDENTITY);
    let audit_topic = config.kafka.topic(topics::AUDIT);

    let mut app = App::new("identity", config.server.clone());
    app.telemetry(&config.telemetry).watch_pool(&pool).watch_redis(&redis);
    let sealer = Sealer::new(&config.sealing)?;
    let keys = KeyRing::open(pool.clone(), sealer, config.identity.access_token_ttl).await?;
    let identity = Identity::new(Parts {
        pool: pool.clone(),
        keys: keys.clone(),
        refresh: RefreshTokens::new(redis.clone(), &config.redis.key_prefix, config.identity.refresh_token_ttl),
        throttle: LoginThrottle::new(redis.clone(), &config.redis.key_prefix, &config.identity.login),
        hasher: Hasher::new().await?,
        oidc: Providers::new(&config.identity.oidc)?,
        pending: PendingLogins::new(redis.clone(), &config.redis.key_prefix, config.identity.oidc.state_ttl),
        settings: config.identity.clone(),
        auth: config.auth.clone(),
        topic,
        audit_topic,
        metrics: app.metrics().clone(),
    });
    identity.bootstrap_admin().await?;

    // Identity verifies its own tokens from its key table rather than over HTTP.
    let local_keys = keys.clone();
    app.authenticate_with(Verifier::new(
        &config.auth,
        Arc::new(move || {
            let keys = local_keys.clone();
            Box::pin(async move { keys.jwks().await })
        }),
    ));
    app.check("postgres", readiness::postgres(pool.clone()));
    app.check("redis", readiness::redis(redis));

    // Identity keeps the audit log: it reads every service's records, its own included.
    let audit = AuditLog::new(pool.clone(), config.identity.audit_retention);
    app.kafka(&config.kafka)?.outbox_relay(&pool, topics::IDENTITY).consume(
        "audit-consumer",
        audit_events::GROUP,
        &[topics::AUDIT],
        &pool,
        AuditEvents::new(audit.clone()),
    );
    app.every("key-reload", key_reload::INTERVAL, KeyReload::new(keys));
    app.every("audit-retention", audit_retention::INTERVAL, AuditRetention::new(audit.clone()));

    let jwks_identity = identity.clone();
    app.admin_routes(axum::Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let identity = jwks_identity.clone();
            async move { jwks_response(&identity).await }
        }),
    ));

    let routes = tonic::service::Routes::new(IdentityServer::new(Api::new(identity)))
        .add_service(AuditServer::new(AuditApi::new(audit)));
    app.bind(routes, &[IdentityServer::<Api>::NAME, AuditServer::<AuditApi>::NAME]).await
}

async fn jwks_response(identity: &Identity) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match identity.jwks().await {
        Ok(set) => ([(axum::http::header::CACHE_CONTROL, "public, max-age=60")], axum::Json(set)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serving the JWKS failed");
            axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
