//! The real gateway, started in-process as `main` starts it (its router, layers and rate
//! limits), on loopback, in front of the [`fakes`](crate::fakes), with a token issuer
//! standing in for identity and a Redis key prefix of its own.

use std::time::{Duration, SystemTime};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use ticketing_gateway::config::Config;
use ticketing_platform::auth::Role;
use ticketing_proto::catalog::v1 as catalog;
use ticketing_testkit::{Spawned, TestIssuer, TestRedis};
use uuid::Uuid;

use crate::fakes::Backends;

/// The key admission passes are signed with.
pub const PASS_SECRET: &str = "gateway-router-tests-pass-secret-0123456789";

pub struct Gateway {
    /// What the backends answer.
    pub backends: Backends,
    pub issuer: TestIssuer,
    base: String,
    client: reqwest::Client,
    _redis: TestRedis,
    gateway: Spawned,
}

impl Gateway {
    /// The gateway with its default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The gateway, `configure` having the last word on its config.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        ticketing_testkit::init_logging();
        let (backends, issuer, redis) = (Backends::start().await, TestIssuer::start().await, TestRedis::new());
        let mut config =
            Config { server: ticketing_testkit::server_config(), redis: redis.config.clone(), ..Config::default() };
        config.auth.jwks_url.clone_from(&issuer.auth.jwks_url);
        let g = &mut config.gateway;
        g.http_addr = "127.0.0.1:0".parse().expect("a loopback address");
        let backend = format!("http://{}", backends.addr);
        for url in
            [&mut g.identity_url, &mut g.catalog_url, &mut g.inventory_url, &mut g.booking_url, &mut g.payment_url]
        {
            url.clone_from(&backend);
        }
        g.notification_url = backend;
        g.waiting_room.pass_secret = PASS_SECRET.into();
        configure(&mut config);
        let gateway = ticketing_gateway::startup::build(config).await.expect("the gateway starts");
        let base = format!("http://{}", gateway.http_addr);
        let gateway = Spawned::start(gateway.running);
        gateway.wait_ready(true).await;
        Self { backends, issuer, base, client: reqwest::Client::new(), _redis: redis, gateway }
    }

    /// A request to the public API, e.g. `gateway.call(Method::GET, "/v1/events")`.
    pub fn call(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// The gateway's own metrics, as Prometheus scrapes them.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.gateway.admin_url());
        self.client.get(url).send().await.expect("the admin port answers").text().await.expect("metrics")
    }

    /// A new account's id and token, its email verified, with `role`.
    pub fn account(&self, role: Role) -> (Uuid, String) {
        let user = Uuid::new_v4();
        (user, self.issuer.token(user, &[role]))
    }

    /// Scripts catalog's `GetEvent` to answer `event` (and not found for any other); its id.
    pub fn has_event(&self, event: catalog::Event) -> String {
        let id = event.id.clone();
        self.backends.catalog.on("get_event", move |request: catalog::GetEventRequest| {
            let found = if request.event_id == event.id {
                Ok(event.clone())
            } else {
                Err(tonic::Status::not_found("no such event"))
            };
            std::future::ready(found)
        });
        id
    }

    /// Joins `event`'s queue as the holder of `token`. The gateway connects to Redis in the
    /// background, so the first visit may find it not connected yet (503): it tries again.
    pub async fn join(&self, event: &str, token: &str) -> Answer {
        let path = format!("/v1/events/{event}/queue");
        ticketing_testkit::eventually("the gateway to reach Redis", Duration::from_secs(10), || async {
            let answer = send(self.call(Method::POST, &path).bearer_auth(token)).await;
            (answer.status != StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
        })
        .await
    }
}

/// An event on sale: opened a minute ago, closing in an hour, with a waiting room admitting
/// `per_minute` buyers a minute (none when `None`).
pub fn on_sale(per_minute: Option<u32>) -> catalog::Event {
    let now = SystemTime::now();
    catalog::Event {
        id: Uuid::new_v4().to_string(),
        name: "Router tests live".into(),
        status: catalog::EventStatus::OnSale as i32,
        sale_starts_at: Some((now - Duration::from_secs(60)).into()),
        sale_ends_at: Some((now + Duration::from_secs(3600)).into()),
        waiting_room: per_minute.map(|n| catalog::WaitingRoom { enabled: true, admission_per_minute: n }),
        ..Default::default()
    }
}

/// What the gateway answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body (`Null` when there is none).
    pub body: Value,
}

impl Answer {
    /// The problem type's last segment, e.g. `sold-out`; empty for anything but a problem.
    pub fn problem(&self) -> &str {
        let kind = self.body["type"].as_str().unwrap_or_default();
        kind.strip_prefix(ticketing_gateway::problem::TYPE_BASE).unwrap_or_default()
    }

    /// The `Retry-After` header, if any.
    pub fn retry_after(&self) -> Option<&str> {
        self.headers.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok())
    }
}

/// Sends `request` and reads the answer.
pub async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("the gateway answers");
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.bytes().await.expect("a body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
    if body.get("type").is_some() {
        assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/problem+json", "{body}");
    }
    Answer { status, headers, body }
}
