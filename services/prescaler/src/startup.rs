//! Wires the catalog reader, the HPA controller and the admin server.

use anyhow::Context as _;
use ticketing_platform::{App, Running};

use crate::config::Config;
use crate::events::consume;
use crate::workers::controller::{self, Knowledge};

/// Connects to the Kubernetes API and binds the ports.
pub async fn build(config: Config) -> anyhow::Result<Running> {
    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API")?;
    let namespace = if config.prescaler.namespace.is_empty() {
        client.default_namespace().to_owned()
    } else {
        config.prescaler.namespace.clone()
    };
    tracing::info!(%namespace, hpas = ?config.prescaler.services.values().map(|t| &t.hpa).collect::<Vec<_>>(), "pre-scaling");

    let mut app = App::new("prescaler", config.server.clone());
    app.telemetry(&config.telemetry);
    let knowledge = Knowledge::new(app.metrics());
    // Not ready until the schedule holds everything published before the start.
    let ready = knowledge.clone();
    app.check(
        "catalog",
        std::sync::Arc::new(move || {
            let complete = ready.is_complete();
            Box::pin(async move {
                anyhow::ensure!(complete, "catalog.events not read back yet");
                Ok(())
            })
        }),
    );
    let topic = config.kafka.topic(ticketing_proto::topics::CATALOG);
    app.spawn("catalog-reader", {
        let (kafka, knowledge, stop) = (config.kafka.clone(), knowledge.clone(), app.stop_token());
        consume::follow(kafka, topic, knowledge, stop)
    });
    app.spawn("hpa-controller", {
        let (settings, metrics, stop) = (config.prescaler.clone(), app.metrics().clone(), app.stop_token());
        async move { controller::run(client, &namespace, &settings, knowledge, &metrics, stop).await }
    });
    app.bind(tonic::service::Routes::default(), &[]).await
}
