//! Wires notification's adapters, consumers, dispatcher and transports.

use axum::routing::get;
use ticketing_platform::auth::Verifier;
use ticketing_platform::sealing::Sealer;
use ticketing_platform::{App, Running, db, readiness};
use ticketing_proto::notification::v1::notification_server::NotificationServer;
use ticketing_proto::topics;
use tonic::server::NamedService as _;

use crate::adapters::keys::TicketKeys;
use crate::adapters::mailer::Mailer;
use crate::config::Config;
use crate::events::consume::{BOOKING_EMAILS_GROUP, Duty, Events, PAYMENT_EMAILS_GROUP, RECORDS_GROUP};
use crate::grpc::Api;
use crate::service::Notification;
use crate::workers::dispatcher::Dispatcher;

/// Where the admin server publishes the ticket keys.
pub const TICKET_KEYS_PATH: &str = "/.well-known/ticket-keys.json";

/// Migrates (if configured), connects and binds the service.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let pool = db::open(&config.database, &crate::migrator()).await?;

    let mut app = App::new("notification", config.server.clone());
    app.telemetry(&config.telemetry).watch_pool(&pool);
    let keys = TicketKeys::open(pool.clone(), Sealer::new(&config.sealing)?).await?;
    let mailer = Mailer::new(&config.notification.from, &config.notification.smtp)?;
    let require_rotating = config.notification.tickets.require_rotating;
    let notification = Notification::new(pool.clone(), keys.clone(), require_rotating, app.metrics());
    app.authenticate_with(Verifier::from_config(&config.auth));
    // SMTP is deliberately not a readiness check: an outage is absorbed by retries, and
    // check-in must keep working through it.
    app.check("postgres", readiness::postgres(pool.clone()));

    app.kafka(&config.kafka)?;
    let consumers = [
        ("records-consumer", RECORDS_GROUP, &[topics::IDENTITY, topics::CATALOG, topics::BOOKING][..], Duty::Records),
        ("booking-emails-consumer", BOOKING_EMAILS_GROUP, &[topics::BOOKING], Duty::Emails),
        ("payment-emails-consumer", PAYMENT_EMAILS_GROUP, &[topics::PAYMENT], Duty::Emails),
    ];
    for (name, group, topics, duty) in consumers {
        let handler = Events::new(keys.clone(), duty, &config.notification);
        app.consume(name, group, topics, &pool, handler);
    }
    let dispatcher = Dispatcher::new(pool, mailer, config.notification.clone(), app.metrics());
    app.spawn("dispatcher", dispatcher.run(app.stop_token()));

    let keys_notification = notification.clone();
    app.admin_routes(axum::Router::new().route(
        TICKET_KEYS_PATH,
        get(move || {
            let notification = keys_notification.clone();
            async move { ticket_keys(&notification).await }
        }),
    ));

    let routes = tonic::service::Routes::new(NotificationServer::new(Api::new(notification)));
    app.bind(routes, &[NotificationServer::<Api>::NAME]).await
}

async fn ticket_keys(notification: &Notification) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match notification.jwks().await {
        Ok(set) => ([(axum::http::header::CACHE_CONTROL, "public, max-age=300")], axum::Json(set)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serving the ticket keys failed");
            axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
