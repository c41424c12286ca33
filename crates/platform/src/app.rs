//! Runs one service: its gRPC server with tonic-health, the admin server,
//! background tasks, and the graceful shutdown that ties them together.
//!
//! Shutdown, on SIGTERM/SIGINT or [`ShutdownHandle::shutdown`]:
//! 1. readiness and gRPC health flip to NOT_SERVING at once;
//! 2. for `server.drain_delay` the service keeps serving, so load balancers see it leave;
//! 3. servers stop accepting, finish in-flight calls, and background tasks stop;
//! 4. whatever is still running at `server.shutdown_grace` after the signal is abandoned.

#[cfg(feature = "kafka")]
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::{AuthLayer, Verifier};
use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::readiness::{Check, Readiness};

type Task = BoxFuture<'static, anyhow::Result<()>>;

/// Everything a service registers before it starts serving.
pub struct App {
    name: &'static str,
    server: ServerConfig,
    metrics: Metrics,
    readiness: Readiness,
    stop: CancellationToken,
    tasks: Vec<(&'static str, Task)>,
    admin_routes: axum::Router,
    verifier: Option<Verifier>,
    #[cfg(feature = "kafka")]
    kafka: Option<Kafka>,
}

/// The service's Kafka clients, from [`App::kafka`].
#[cfg(feature = "kafka")]
struct Kafka {
    config: crate::kafka::KafkaConfig,
    /// Shared by the outbox relay and the consumers' dead letters.
    producer: crate::kafka::Producer,
    /// What [`App::bind`] creates when missing: topic settings, and the topics (full names)
    /// created with them.
    topics: BTreeMap<Vec<(String, String)>, BTreeSet<String>>,
}

impl App {
    /// A new service called `name` (also its metrics label).
    pub fn new(name: &'static str, server: ServerConfig) -> Self {
        let metrics = Metrics::new(name);
        Self {
            name,
            readiness: Readiness::reporting_to(metrics.clone(), server.readiness_failure_threshold),
            server,
            metrics,
            stop: CancellationToken::new(),
            tasks: Vec::new(),
            admin_routes: axum::Router::new(),
            verifier: None,
            #[cfg(feature = "kafka")]
            kafka: None,
        }
    }

    /// The service's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Applies the metric settings of `telemetry` (sampling interval, per-event cap).
    pub fn telemetry(&mut self, telemetry: &crate::telemetry::TelemetryConfig) -> &mut Self {
        self.metrics.configure(telemetry);
        self
    }

    /// Samples `pool`'s `db_pool_*` metrics every `telemetry.metrics_interval` until shutdown.
    #[cfg(feature = "postgres")]
    pub fn watch_pool(&mut self, pool: &sqlx::PgPool) -> &mut Self {
        let task = crate::db::watch(pool.clone(), self.metrics.clone(), self.stop.clone());
        self.spawn("db-pool-metrics", task)
    }

    /// Samples Redis's `redis_memory_*` metrics every `telemetry.metrics_interval` until shutdown.
    pub fn watch_redis(&mut self, connection: &crate::redis::Connection) -> &mut Self {
        let task = crate::redis::watch_memory(connection.clone(), self.metrics.clone(), self.stop.clone());
        self.spawn("redis-memory-metrics", task)
    }

    /// The service's readiness checks (what `/readyz` reports).
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Cancelled when background work must stop (step 3 of shutdown).
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Adds a dependency check to readiness and gRPC health: failing it
    /// `server.readiness_failure_threshold` rounds in a row makes the service unready.
    pub fn check(&mut self, name: &'static str, check: Check) -> &mut Self {
        self.readiness.add(name, check);
        self
    }

    /// Adds a dependency check that `/readyz` and `platform_dependency_up` report but that
    /// never makes the service unready: for a dependency the service's main path works without.
    pub fn monitor(&mut self, name: &'static str, check: Check) -> &mut Self {
        self.readiness.monitor(name, check);
        self
    }

    /// Runs `task` until shutdown; it must return soon after [`App::stop_token`] is cancelled.
    /// A task that fails stops the whole service.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> &mut Self {
        self.tasks.push((name, Box::pin(task)));
        self
    }

    /// Runs `job` as task `name`: a round at once, then one `interval` after each ended, until
    /// shutdown (which waits for the round in hand; [`crate::periodic::Every`]). Its rounds are
    /// counted in `platform_job_rounds_total{job="<name>"}`.
    pub fn every(&mut self, name: &'static str, interval: Duration, job: impl crate::periodic::Job) -> &mut Self {
        let (stop, done) = (self.stop.clone(), self.metrics.job_rounds(name));
        self.spawn(name, async move {
            crate::periodic::run(job, interval, stop, done).await;
            Ok(())
        })
    }

    /// Adds routes to the admin server.
    pub fn admin_routes(&mut self, routes: axum::Router) -> &mut Self {
        self.admin_routes = std::mem::take(&mut self.admin_routes).merge(routes);
        self
    }

    /// Verifies bearer tokens on every gRPC call and attaches the [`crate::auth::Principal`].
    pub fn authenticate_with(&mut self, verifier: Verifier) -> &mut Self {
        self.verifier = Some(verifier);
        self
    }

    /// Binds both ports. `services` names the gRPC services whose health is reported
    /// (the empty name, for the whole server, is always reported). A service with Kafka
    /// consumers (made with this app's metrics before this call) gets the readiness check
    /// `kafka-consumers`, which fails while one of them is stalled.
    pub async fn bind(mut self, routes: Routes, services: &[&'static str]) -> anyhow::Result<Running> {
        #[cfg(feature = "kafka")]
        self.ensure_topics().await;
        if !self.metrics.consumer_stalls().is_empty() {
            self.readiness.add("kafka-consumers", crate::readiness::kafka_consumers(self.metrics.clone()));
        }
        let grpc = TcpListener::bind(self.server.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC on {}", self.server.grpc_addr))?;
        let admin = TcpListener::bind(self.server.admin_addr)
            .await
            .with_context(|| format!("binding admin HTTP on {}", self.server.admin_addr))?;
        Ok(Running {
            grpc_addr: grpc.local_addr()?,
            admin_addr: admin.local_addr()?,
            shutdown: ShutdownHandle(CancellationToken::new()),
            app: self,
            listeners: (grpc, admin),
            routes,
            services: std::iter::once("").chain(services.iter().copied()).collect(),
        })
    }
}

/// Kafka: the outbox relay, consumers, and the topics both need.
#[cfg(feature = "kafka")]
impl App {
    /// Makes the service's Kafka producer from `config`; call it before the other Kafka
    /// methods. Topics they name are created by [`App::bind`] when missing.
    pub fn kafka(&mut self, config: &crate::kafka::KafkaConfig) -> anyhow::Result<&mut Self> {
        let producer = crate::kafka::producer(config)?;
        self.kafka = Some(Kafka { config: config.clone(), producer, topics: BTreeMap::new() });
        Ok(self)
    }

    fn kafka_parts(&mut self) -> &mut Kafka {
        self.kafka.as_mut().expect("App::kafka is called before the other Kafka methods")
    }

    /// Publishes `pool`'s outbox (task `outbox-relay`); `topic` is the base name of the topic
    /// the service publishes.
    pub fn outbox_relay(&mut self, pool: &sqlx::PgPool, topic: &str) -> &mut Self {
        self.outbox_relay_with(pool, topic, &[])
    }

    /// Like [`App::outbox_relay`], creating the topic with `topic_config` (e.g. a larger
    /// `max.message.bytes`) when it is missing.
    pub fn outbox_relay_with(&mut self, pool: &sqlx::PgPool, topic: &str, topic_config: &[(&str, &str)]) -> &mut Self {
        let metrics = self.metrics.clone();
        let kafka = self.kafka_parts();
        let topic_config = topic_config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        kafka.topics.entry(topic_config).or_default().insert(kafka.config.topic(topic));
        let relay = crate::kafka::outbox::Relay::new(pool.clone(), kafka.producer.clone(), &kafka.config, &metrics);
        let stop = self.stop.clone();
        self.spawn("outbox-relay", relay.run(stop))
    }

    /// Creates `topic` (a base name) at start when missing, for a service whose outbox also
    /// carries events of a topic it does not own (every service's audit records).
    pub fn publishes(&mut self, topic: &str) -> &mut Self {
        let kafka = self.kafka_parts();
        let topic = kafka.config.topic(topic);
        kafka.topics.entry(Vec::new()).or_default().insert(topic);
        self
    }

    /// Runs a member of consumer group `group` reading `topics` (base names) into `handler`,
    /// as task `name`. The topics and their dead-letter topics are created when missing.
    pub fn consume<H: crate::kafka::consumer::Handler>(
        &mut self,
        name: &'static str,
        group: &str,
        topics: &[&str],
        pool: &sqlx::PgPool,
        handler: H,
    ) -> &mut Self {
        let metrics = self.metrics.clone();
        let kafka = self.kafka_parts();
        let topics: Vec<String> = topics.iter().map(|t| kafka.config.topic(t)).collect();
        let created = kafka.topics.entry(Vec::new()).or_default();
        created.extend(topics.iter().flat_map(|t| [t.clone(), format!("{t}{}", crate::kafka::DLQ_SUFFIX)]));
        let (producer, config) = (kafka.producer.clone(), &kafka.config);
        let consumer =
            crate::kafka::consumer::Consumer::new(group, topics, pool.clone(), producer, handler, config, &metrics);
        let stop = self.stop.clone();
        self.spawn(name, consumer.run(stop))
    }

    /// Creates the topics the relay and consumers named. A broker that does not answer is not
    /// fatal: the relay keeps its events in the outbox and consumers wait for their topics.
    async fn ensure_topics(&self) {
        let Some(kafka) = &self.kafka else { return };
        for (topic_config, topics) in &kafka.topics {
            let topics: Vec<String> = topics.iter().cloned().collect();
            let topic_config: Vec<(&str, &str)> = topic_config.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Err(e) = crate::kafka::ensure_topics_with(&kafka.config, &topics, &topic_config).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "could not ensure Kafka topics; the relay and consumers wait for them"
                );
            }
        }
    }
}

/// Starts shutdown from outside (tests, or a fatal error elsewhere).
#[derive(Clone, Debug)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Begins graceful shutdown, as SIGTERM would.
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

/// A bound service, ready to run.
pub struct Running {
    grpc_addr: SocketAddr,
    admin_addr: SocketAddr,
    shutdown: ShutdownHandle,
    app: App,
    listeners: (TcpListener, TcpListener),
    routes: Routes,
    services: Vec<&'static str>,
}

impl Running {
    /// Where gRPC listens (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where the admin server listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// A handle that starts shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until a signal or the shutdown handle, then drains (see the module docs).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self { app, listeners: (grpc, admin), routes, services, shutdown, .. } = self;
        let name = app.name;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        set_health(&reporter, &services, ServingStatus::NotServing).await;

        let stop = app.stop.clone();
        let mut set: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();

        let grpc_server = tonic::transport::Server::builder()
            .layer(app.metrics.grpc_layer())
            .layer(tower::util::option_layer(app.verifier.clone().map(AuthLayer::new)))
            .add_routes(routes)
            .add_service(health_service);
        let incoming = tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
        let grpc_stop = stop.clone();
        set.spawn(async move {
            let result = grpc_server
                .serve_with_incoming_shutdown(incoming, grpc_stop.cancelled_owned())
                .await
                .context("gRPC server failed");
            ("grpc", result)
        });

        let router = crate::admin::router(app.metrics.clone(), app.readiness.clone(), app.admin_routes);
        let admin_stop = stop.clone();
        set.spawn(async move {
            let result = axum::serve(admin, router)
                .with_graceful_shutdown(admin_stop.cancelled_owned())
                .await
                .context("admin server failed");
            ("admin", result)
        });

        for (task_name, task) in app.tasks {
            set.spawn(async move { (task_name, task.await) });
        }

        let watcher = tokio::spawn(watch_readiness(
            app.readiness.clone(),
            reporter.clone(),
            services.clone(),
            app.server.readiness_interval,
            stop.clone(),
        ));

        // Wait for a reason to stop: a signal, the handle, or a component ending early.
        let mut failure = None;
        tokio::select! {
            signal = crate::shutdown::signal() => tracing::info!(service = name, signal, "shutdown requested"),
            () = shutdown.0.cancelled() => tracing::info!(service = name, "shutdown requested"),
            Some(joined) = set.join_next() => {
                let (component, result) = joined.context("service component panicked")?;
                let error = result.err().unwrap_or_else(|| anyhow::anyhow!("{component} stopped unexpectedly"));
                tracing::error!(service = name, component, error = format!("{error:#}"), "service component failed");
                failure = Some(error);
            }
        }
        let deadline = tokio::time::Instant::now() + app.server.shutdown_grace;

        // 1. Leave the load balancers. The watcher goes first so it cannot flip health back.
        app.readiness.start_draining();
        watcher.abort();
        let _ = watcher.await;
        set_health(&reporter, &services, ServingStatus::NotServing).await;
        // 2. Keep serving while they notice (skipped when something already failed).
        if failure.is_none() {
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + app.server.drain_delay)).await;
        }
        // 3. Stop accepting, finish in-flight work.
        stop.cancel();
        let drained = tokio::time::timeout_at(deadline, async {
            while let Some(joined) = set.join_next().await {
                match joined {
                    Ok((component, Err(e))) => {
                        tracing::error!(service = name, component, error = format!("{e:#}"), "failed while stopping");
                    }
                    Ok((_, Ok(()))) => {}
                    Err(e) => tracing::error!(service = name, error = %e, "component panicked while stopping"),
                }
            }
        })
        .await;
        // 4. Abandon the rest.
        if drained.is_err() {
            tracing::warn!(service = name, grace = ?app.server.shutdown_grace, "grace period over; abandoning in-flight work");
            set.abort_all();
        }
        tracing::info!(service = name, "stopped");
        failure.map_or(Ok(()), Err)
    }
}

async fn set_health(reporter: &HealthReporter, services: &[&'static str], status: ServingStatus) {
    for service in services {
        reporter.set_service_status(*service, status).await;
    }
}

async fn watch_readiness(
    readiness: Readiness,
    reporter: HealthReporter,
    services: Vec<&'static str>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut last = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.is_cancelled() {
        ticker.tick().await;
        let report = readiness.run().await;
        let ready = report.is_ready();
        if last != Some(ready) {
            if !ready && !report.draining {
                let failing: Vec<_> =
                    report.checks.iter().filter_map(|c| Some((c.name, c.failure.as_deref()?))).collect();
                tracing::warn!(?failing, "not ready");
            }
            let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
            set_health(&reporter, &services, status).await;
            last = Some(ready);
        }
    }
}
