//! Rate limits shared by every gateway replica: GCRA (the generic cell rate algorithm)
//! in Redis, one Lua script checking every limit that applies to a request at once: per
//! client IP for everyone, per user for a verified token, per IP and per email on
//! `POST /v1/auth/login` and `POST /v1/auth/password/forgot`, per IP on
//! `POST /v1/auth/register` (and per user on its verification email's resend), and per IP
//! on the large
//! public answers (`seats=true`, `seat_map=true`). Concurrent requests' checks are coalesced into one script call
//! (`ticketing_platform::coalesce`), which takes each request in turn: the decisions are
//! exactly those of one call per request, for a fraction of the round trips.
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT) of the next request
//! at the sustained rate. A request is allowed when it does not arrive earlier than
//! `TAT - burst × interval`; it then pushes the TAT one interval further. Keys expire
//! when their TAT has passed, i.e. when they would allow a full burst anyway.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;
use ticketing_platform::auth::Verifier;
use ticketing_platform::coalesce::Coalescer;
use ticketing_platform::redis::LazyConnection;

use crate::config::{Limit, RateLimits};
use crate::extract::{ClientIp, Verified, bearer};
use crate::problem::Problem;

/// Checks a batch of requests in order. For each, checks every limit and, when all allow
/// it, takes one from each: a later request in the batch sees what an earlier one took.
/// All times in microseconds of the Redis server's clock, so replicas' clocks do not matter.
/// KEYS: each request's keys, one per limit, request after request. ARGV: per request, its
/// number of limits n, then per limit its emission interval and burst tolerance.
/// Returns per request {allowed, retry_after, remaining, reset, index (1-based) of the
/// binding limit}, flattened.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local out = {}
local k, a = 0, 1
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local next_tats = {}
  local allowed, retry, remaining, reset, binding = 1, 0, -1, 0, 1
  for i = 1, n do
    local key = KEYS[k + i]
    local interval = tonumber(ARGV[a + 2 * i - 1])
    local tolerance = tonumber(ARGV[a + 2 * i])
    local tat = math.max(tonumber(redis.call('GET', key) or now), now)
    local next_tat = tat + interval
    local allow_at = next_tat - tolerance
    if now < allow_at then
      if allowed == 1 or allow_at - now > retry then binding = i end
      allowed = 0
      retry = math.max(retry, allow_at - now)
    else
      next_tats[i] = next_tat
      local left = math.floor((now - allow_at) / interval)
      if allowed == 1 and (remaining < 0 or left < remaining) then
        remaining, reset, binding = left, next_tat - now, i
      end
    end
  end
  if allowed == 0 then
    for _, v in ipairs({0, math.ceil(retry), 0, math.ceil(retry), binding}) do out[#out + 1] = v end
  else
    for i = 1, n do
      redis.call('SET', KEYS[k + i], next_tats[i], 'PX', math.ceil((next_tats[i] - now) / 1000))
    end
    for _, v in ipairs({1, 0, remaining, math.ceil(reset), binding}) do out[#out + 1] = v end
  end
  k, a = k + n, a + 1 + 2 * n
end
return out
";

/// Which limit a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Ip,
    User,
    LoginIp,
    LoginEmail,
    Register,
    Resend,
    ForgotIp,
    ForgotEmail,
    Heavy,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::User => "user",
            Self::LoginIp => "login-ip",
            Self::LoginEmail => "login-email",
            Self::Register => "register",
            Self::Resend => "verify-resend",
            Self::ForgotIp => "password-forgot-ip",
            Self::ForgotEmail => "password-forgot-email",
            Self::Heavy => "heavy",
        }
    }
}

/// What the limits said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// When a refused request may be sent again.
    pub retry_after: Duration,
    /// Requests left in the tightest limit's burst.
    pub remaining: u64,
    /// When the tightest limit is back to a full burst.
    pub reset: Duration,
    /// The tightest limit's burst.
    pub limit: u32,
}

impl Decision {
    /// From the script's reply, for the limits it was given.
    fn from_reply(reply: [i64; 5], limits: &[Limit]) -> Self {
        let [allowed, retry, remaining, reset, binding] = reply;
        let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
        let index = usize::try_from(binding - 1).unwrap_or(0).min(limits.len().saturating_sub(1));
        Self {
            allowed: allowed == 1,
            retry_after: micros(retry),
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset: micros(reset),
            limit: limits.get(index).map_or(0, |l| l.burst),
        }
    }

    /// `RateLimit-Limit`, `-Remaining` and `-Reset` (seconds, rounded up), after the
    /// IETF httpapi draft, so clients can pace themselves before they are refused.
    fn headers(&self) -> [(HeaderName, HeaderValue); 3] {
        [
            (HeaderName::from_static("ratelimit-limit"), HeaderValue::from(self.limit)),
            (HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(self.remaining)),
            (HeaderName::from_static("ratelimit-reset"), HeaderValue::from(ceil_secs(self.reset))),
        ]
    }
}

/// Whole seconds, rounded up: a client that waits `Retry-After` must not be refused again.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `(emission interval, burst tolerance)` in microseconds.
fn gcra_args(limit: Limit) -> (u64, u64) {
    let interval = (1_000_000.0 / limit.per_second).round().max(1.0) as u64;
    (interval, interval * u64::from(limit.burst))
}

/// The client's address: the socket's peer, or with `hops` trusted proxies in front, the
/// address the outermost of them saw (the `hops`-th entry of `X-Forwarded-For` from
/// the right). Entries further left were written by the client and prove nothing.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, hops: usize) -> Option<IpAddr> {
    if hops == 0 {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // Fewer entries than proxies: each was written by a trusted proxy.
    let Some(entry) = entries.get(entries.len().saturating_sub(hops)) else { return peer };
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip())).or(peer)
}

/// One limit of one request, as the script takes it.
#[derive(Debug)]
struct Check {
    key: String,
    interval: u64,
    tolerance: u64,
}

/// The script's reply for one request (see [`GCRA`]), or why there is none.
type Reply = Result<[i64; 5], String>;

/// The limits, and the coalescer in front of their script.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RateLimits,
    key_prefix: String,
    scripts: Coalescer<Vec<Check>, Reply>,
    verifier: Verifier,
    max_body_bytes: usize,
    unchecked: prometheus::IntCounter,
    failing: AtomicBool,
}

/// What a batch needs to call the script.
struct Script {
    /// Until Redis first answers, requests go through unchecked.
    redis: LazyConnection,
    script: redis::Script,
    timeout: Duration,
    /// `redis_command_duration_seconds{operation="rate_limit"}`, per script call.
    timer: prometheus::Histogram,
}

impl Script {
    /// One script call for `batch`; a reply per request, in order.
    async fn run(&self, batch: Vec<Vec<Check>>) -> Vec<Reply> {
        let mut invocation = self.script.prepare_invoke();
        for checks in &batch {
            invocation.arg(checks.len());
            for check in checks {
                invocation.key(&check.key).arg(check.interval).arg(check.tolerance);
            }
        }
        let reply: Result<Vec<i64>, String> = async {
            let mut redis = self.redis.get().ok_or("not connected yet")?;
            let _timer = self.timer.start_timer();
            match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut redis)).await {
                Ok(reply) => reply.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            }
        }
        .await;
        match reply {
            Ok(flat) if flat.len() == 5 * batch.len() => {
                flat.chunks_exact(5).map(|r| Ok([r[0], r[1], r[2], r[3], r[4]])).collect()
            }
            Ok(flat) => vec![Err(format!("{} numbers for {} requests", flat.len(), batch.len())); batch.len()],
            Err(error) => vec![Err(error); batch.len()],
        }
    }
}

impl RateLimiter {
    /// A limiter over `redis` (keys under `key_prefix`), counting requests let through
    /// unchecked in `metrics`. Needs a Tokio runtime (it starts the coalescer's task).
    pub fn new(
        settings: RateLimits,
        redis: LazyConnection,
        key_prefix: &str,
        verifier: Verifier,
        max_body_bytes: usize,
        metrics: &ticketing_platform::metrics::Metrics,
    ) -> anyhow::Result<Self> {
        let unchecked = metrics.register(&prometheus::IntCounter::new(
            "gateway_rate_limit_unchecked_total",
            "Requests let through without a rate-limit check because Redis failed or was slow.",
        )?);
        let sizes = metrics.register(&prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "gateway_rate_limit_batch_size",
                "Requests whose rate limits one Redis script call checked.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?);
        let script = Arc::new(Script {
            redis,
            script: redis::Script::new(GCRA),
            timeout: settings.redis_timeout,
            timer: metrics.redis_timer("rate_limit"),
        });
        let batching = settings.batching();
        let scripts = Coalescer::start("rate-limit", batching, sizes, move |batch| {
            let script = script.clone();
            async move { script.run(batch).await }
        });
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                key_prefix: key_prefix.to_owned(),
                scripts,
                verifier,
                max_body_bytes,
                unchecked,
                failing: AtomicBool::new(false),
            }),
        })
    }

    /// Checks `checks` together; `None` when Redis could not answer in time.
    async fn check(&self, checks: &[(Rule, Limit, String)]) -> Option<Decision> {
        let inner = &self.inner;
        let keys = checks
            .iter()
            .map(|(rule, limit, subject)| {
                let (interval, tolerance) = gcra_args(*limit);
                Check { key: format!("{}ratelimit:{}:{subject}", inner.key_prefix, rule.name()), interval, tolerance }
            })
            .collect();
        let timeout = inner.settings.redis_timeout;
        // The batch's own call has this timeout too; this one also bounds the wait for a batch.
        let reply = match tokio::time::timeout(timeout, inner.scripts.call(keys)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(stopped)) => Err(stopped.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        match reply {
            Ok(reply) => {
                if inner.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits: Redis answers again");
                }
                let limits: Vec<Limit> = checks.iter().map(|(_, limit, _)| *limit).collect();
                Some(Decision::from_reply(reply, &limits))
            }
            Err(error) => {
                // Fail open: during an on-sale, serving buyers without exact limits beats
                // refusing everyone because Redis hiccuped; the concurrency limit still
                // protects the gateway. Warn once per outage, count every request.
                inner.unchecked.inc();
                if !inner.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error, "rate limits: Redis failed; letting requests through unchecked");
                }
                None
            }
        }
    }
}

/// The large public answers: a whole event's seat states, a whole venue's seat map.
/// Runs on every request, holds included: no allocation, and nothing past the method for
/// anything but a GET.
fn is_heavy(method: &Method, uri: &axum::http::Uri) -> bool {
    if method != Method::GET {
        return false;
    }
    let flag = |pair: &str| uri.query().is_some_and(|q| q.split('&').any(|p| p == pair));
    let mut segments = uri.path().trim_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some("v1"), Some("events"), Some(_), Some("availability"), None) => flag("seats=true"),
        (Some("v1"), Some("venues"), Some(_), None, None) => flag("seat_map=true"),
        _ => false,
    }
}

/// `/v1/auth/oidc/{provider}/start`.
fn is_oidc_start(path: &str) -> bool {
    path.strip_prefix("/v1/auth/oidc/")
        .and_then(|rest| rest.strip_suffix("/start"))
        .is_some_and(|provider| !provider.is_empty() && !provider.contains('/'))
}

/// The email a login is for, normalised and hashed (no addresses in Redis keys).
fn body_email(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let email = value.get("email")?.as_str()?.trim().to_lowercase();
    (!email.is_empty()).then(|| hex(&sha2::Sha256::digest(email.as_bytes())[..16]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<S> tower::Layer<S> for RateLimiter {
    type Service = Limited<S>;

    fn layer(&self, service: S) -> Limited<S> {
        Limited { limiter: self.clone(), service }
    }
}

/// Middleware: refuses a request over any of its limits with 429 and `Retry-After`. A
/// tower service rather than `from_fn`, which would box a copy of the routes inside it and
/// their future again for every request.
#[derive(Clone)]
pub struct Limited<S> {
    limiter: RateLimiter,
    service: S,
}

impl<S> tower::Service<Request> for Limited<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service made ready is the one to call, later; a clone takes its place.
        let spare = self.service.clone();
        let ready = std::mem::replace(&mut self.service, spare);
        Box::pin(limit(self.limiter.clone(), request, ready))
    }
}

async fn limit<S>(limiter: RateLimiter, mut request: Request, mut next: S) -> Result<Response, Infallible>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    let inner = &limiter.inner;
    let settings = inner.settings;
    // Derived by `extract::IdentifyClient`, outside this layer.
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .and_then(|c| c.0)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let mut checks = vec![(Rule::Ip, settings.ip, ip.clone())];
    // A bad token gets only the IP limit here; the route answers its 401.
    let verified = match bearer(request.headers()) {
        Some(token) => inner.verifier.verify(token).await.ok(),
        None => None,
    };
    if let Some(principal) = verified {
        checks.push((Rule::User, settings.user, principal.user_id.to_string()));
        // Each sends an email: the registration budget, per account.
        if request.method() == Method::POST && request.uri().path() == "/v1/auth/verify-email/resend" {
            checks.push((Rule::Resend, settings.register, principal.user_id.to_string()));
        }
        // The route's `Caller` takes it from here rather than look the token up again.
        request.extensions_mut().insert(Verified(principal));
    }
    if is_heavy(request.method(), request.uri()) {
        checks.push((Rule::Heavy, settings.heavy, ip.clone()));
    }
    // Each registration costs identity a password hash, and each account a per-user
    // budget of its own: a limit far below the general one, on its own key.
    if request.method() == Method::POST && request.uri().path() == "/v1/auth/register" {
        checks.push((Rule::Register, settings.register, ip.clone()));
    }
    // Each social login started keeps a state in identity's Redis and calls the provider:
    // the login budget per address.
    if request.method() == Method::GET && is_oidc_start(request.uri().path()) {
        checks.push((Rule::LoginIp, settings.login, ip.clone()));
    }
    // Logins per email guard the account; reset emails per address guard its inbox.
    let by_email = match request.uri().path() {
        "/v1/auth/login" => Some((Rule::LoginIp, settings.login, Rule::LoginEmail, settings.login)),
        "/v1/auth/password/forgot" => {
            Some((Rule::ForgotIp, settings.register, Rule::ForgotEmail, settings.password_reset))
        }
        _ => None,
    };
    if let Some((ip_rule, ip_limit, email_rule, email_limit)) = by_email.filter(|_| request.method() == Method::POST) {
        checks.push((ip_rule, ip_limit, ip));
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, inner.max_body_bytes).await else {
            return Ok(
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Body too large", "").into_response()
            );
        };
        if let Some(email) = body_email(&bytes) {
            checks.push((email_rule, email_limit, email));
        }
        request = Request::from_parts(parts, axum::body::Body::from(bytes));
    }
    let Some(decision) = limiter.check(&checks).await else { return next.call(request).await };
    if !decision.allowed {
        let retry_after = Duration::from_secs(ceil_secs(decision.retry_after).max(1));
        let mut response = Problem::rate_limited("too many requests; slow down", retry_after).into_response();
        response.headers_mut().extend(decision.headers());
        return Ok(response);
    }
    let mut response = next.call(request).await?;
    // The quota rides on answers, not on refusals: a 409 sold out with `RateLimit-*` headers
    // reads as a rate limit to some clients, and only the limiter's 429 is one (I8).
    if response.status().is_success() {
        response.headers_mut().extend(decision.headers());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_social_login_start_takes_the_login_budget() {
        assert!(is_oidc_start("/v1/auth/oidc/google/start"));
        assert!(!is_oidc_start("/v1/auth/oidc/google/callback"));
        assert!(!is_oidc_start("/v1/auth/oidc//start"));
        assert!(!is_oidc_start("/v1/auth/oidc/a/b/start"));
        assert!(!is_oidc_start("/v1/auth/login"));
    }

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_client_ip_is_the_peer_unless_proxies_are_trusted() {
        let peer: Option<IpAddr> = Some("10.0.0.9".parse().unwrap());
        let spoofed = xff("1.2.3.4, 203.0.113.7");
        assert_eq!(client_ip(peer, &spoofed, 0), peer, "the header is ignored without trusted hops");
        assert_eq!(client_ip(peer, &spoofed, 1), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(client_ip(peer, &spoofed, 2), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(client_ip(peer, &xff("203.0.113.7"), 3), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(client_ip(peer, &HeaderMap::new(), 1), peer, "no header: the peer");
        assert_eq!(client_ip(peer, &xff("1.2.3.4, garbage"), 1), peer, "an unreadable entry: the peer");
        let mut two = xff("1.2.3.4");
        two.append("x-forwarded-for", HeaderValue::from_static("[2001:db8::1]:443"));
        assert_eq!(client_ip(peer, &two, 1), Some("2001:db8::1".parse().unwrap()), "headers join in order");
    }

    /// The values files' hop counts against what each load balancer documents that it
    /// writes, for clients that send no header, an honest one, or a forged chain: the key
    /// is always the address the load balancer saw, never one the client wrote.
    #[test]
    fn the_cloud_load_balancers_hop_counts_key_on_the_client_whatever_it_forges() {
        let client = "203.0.113.7";
        let sent = ["", "192.0.2.1", "1.2.3.4, 5.6.7.8", "not-an-address", "10.0.0.1, 35.191.0.1, 34.117.0.1"];
        // GKE's external Application Load Balancer appends "<client>, <forwarding rule's
        // address>" and connects from a Google front end (35.191.0.0/16, 130.211.0.0/22).
        let gfe: Option<IpAddr> = Some("35.191.3.4".parse().unwrap());
        // The AWS ALB (X-Forwarded-For processing mode append) appends the client and
        // connects from one of its own nodes in the VPC.
        let alb: Option<IpAddr> = Some("10.0.12.34".parse().unwrap());
        for forged in sent {
            let prefix = if forged.is_empty() { String::new() } else { format!("{forged}, ") };
            let gke = xff(&format!("{prefix}{client}, 34.117.0.1"));
            assert_eq!(client_ip(gfe, &gke, 2), client.parse().ok(), "GKE, 2 hops, the client sent {forged:?}");
            assert_eq!(client_ip(gfe, &gke, 1), "34.117.0.1".parse().ok(), "GKE at 1 hop keys on the load balancer");
            let aws = xff(&format!("{prefix}{client}"));
            assert_eq!(client_ip(alb, &aws, 1), client.parse().ok(), "ALB, 1 hop, the client sent {forged:?}");
            assert_eq!(client_ip(alb, &aws, 0), alb, "at 0 hops every client is the ALB node");
        }
        // A client's own header line before the load balancer's is joined in order.
        let mut two = xff("9.9.9.9");
        two.append("x-forwarded-for", HeaderValue::from_str(&format!("{client}, 34.117.0.1")).unwrap());
        assert_eq!(client_ip(gfe, &two, 2), client.parse().ok());
    }

    #[test]
    fn only_the_large_answers_are_heavy() {
        let heavy = |method: Method, uri: &str| is_heavy(&method, &uri.parse().unwrap());
        assert!(heavy(Method::GET, "/v1/events/e1/availability?seats=true"));
        assert!(heavy(Method::GET, "/v1/venues/v1?x=1&seat_map=true"));
        assert!(!heavy(Method::GET, "/v1/events/e1/availability"));
        assert!(!heavy(Method::GET, "/v1/events/e1/availability?seats=false"));
        assert!(!heavy(Method::GET, "/v1/venues/v1"));
        assert!(!heavy(Method::PUT, "/v1/venues/v1/seatmap?seat_map=true"));
        assert!(!heavy(Method::POST, "/v1/events/e1/availability?seats=true"));
    }

    #[test]
    fn gcra_arguments_and_rounding() {
        assert_eq!(gcra_args(Limit { per_second: 10.0, burst: 5 }), (100_000, 500_000));
        assert_eq!(gcra_args(Limit { per_second: 0.2, burst: 3 }), (5_000_000, 15_000_000));
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(2000)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn replies_name_the_binding_limit() {
        let limits = [Limit { per_second: 100.0, burst: 200 }, Limit { per_second: 1.0, burst: 5 }];
        let refused = Decision::from_reply([0, 1_500_000, 0, 1_500_000, 2], &limits);
        assert_eq!(
            refused,
            Decision {
                allowed: false,
                retry_after: Duration::from_millis(1500),
                remaining: 0,
                reset: Duration::from_millis(1500),
                limit: 5
            }
        );
        let [_, remaining, reset] = refused.headers();
        assert_eq!((remaining.1, reset.1), (HeaderValue::from(0), HeaderValue::from(2)));
    }

    #[test]
    fn body_emails_are_normalised_and_hashed() {
        let a = body_email(br#"{"email": " Fan@Example.com ", "password": "x"}"#).unwrap();
        assert_eq!(Some(a.clone()), body_email(br#"{"email": "fan@example.com"}"#));
        assert_eq!(a.len(), 32);
        assert!(!a.contains('@'));
        assert_eq!(body_email(b"not json"), None);
        assert_eq!(body_email(br#"{"email": 7}"#), None);
    }

    struct Limiter {
        limiter: RateLimiter,
        metrics: ticketing_platform::metrics::Metrics,
        connection: LazyConnection,
    }

    fn limiter(redis: &ticketing_platform::redis::RedisConfig) -> Limiter {
        let metrics = ticketing_platform::metrics::Metrics::new("test");
        let verifier = Verifier::from_config(&ticketing_platform::auth::AuthConfig::default());
        let connection = LazyConnection::connect(redis).unwrap();
        // A loaded CI machine can take longer than the production 100 ms; the maths is under test.
        let settings = RateLimits { redis_timeout: Duration::from_secs(5), ..RateLimits::default() };
        let limiter = RateLimiter::new(settings, connection.clone(), &redis.key_prefix, verifier, 1024, &metrics);
        Limiter { limiter: limiter.unwrap(), metrics, connection }
    }

    impl Limiter {
        async fn connected(self) -> Self {
            ticketing_testkit::eventually("a Redis connection", Duration::from_secs(10), || async {
                self.connection.get()
            })
            .await;
            self
        }
    }

    /// The script's maths against a real Redis, with limits fast enough to watch.
    #[tokio::test]
    async fn the_script_allows_a_burst_then_the_rate() {
        let redis = ticketing_testkit::TestRedis::for_service("gateway");
        let limiter = limiter(&redis.config).connected().await.limiter;
        // 5 per second with a burst of 3: 3 at once, then one every 200 ms.
        let tight = Limit { per_second: 5.0, burst: 3 };
        // Slow refill, so the milliseconds between calls do not give any back.
        let loose = Limit { per_second: 0.01, burst: 1000 };
        let checks = [(Rule::Ip, loose, "a".to_owned()), (Rule::User, tight, "u".to_owned())];
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let d = limiter.check(&checks).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.limit, 3, "the tighter limit binds");
            remaining.push(d.remaining);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.check(&checks).await.unwrap();
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_millis(100) && refused.retry_after <= Duration::from_millis(200));
        // A refused request takes nothing, not even from the limits it passed.
        let other = limiter.check(&[(Rule::Ip, loose, "a".to_owned())]).await.unwrap();
        assert_eq!(other.remaining, 996, "the 4th call did not count against the IP");
        tokio::time::sleep(refused.retry_after).await;
        assert!(limiter.check(&checks).await.unwrap().allowed, "allowed again after Retry-After");
        assert!(!limiter.check(&checks).await.unwrap().allowed, "but only one");
        // Another subject has its own budget.
        assert!(limiter.check(&[(Rule::User, tight, "v".to_owned())]).await.unwrap().allowed);
        let keys = redis.keys();
        assert_eq!(keys.len(), 3, "{keys:?}");
    }

    /// Checks coalesced into one script call are taken in turn, as if each had its own.
    #[tokio::test]
    async fn concurrent_checks_share_script_calls_and_decide_exactly() {
        let redis = ticketing_testkit::TestRedis::for_service("gateway");
        let Limiter { limiter, metrics, .. } = limiter(&redis.config).connected().await;
        let tight = Limit { per_second: 0.01, burst: 3 };
        let loose = Limit { per_second: 0.01, burst: 1000 };
        let checks: Vec<_> = (0..40)
            .map(|n| [(Rule::Ip, loose, format!("ip{}", n % 4)), (Rule::User, tight, format!("user{}", n % 2))])
            .collect();
        let decisions = futures::future::join_all(checks.iter().map(|c| limiter.check(c))).await;
        let allowed: Vec<usize> =
            (0..2).map(|user| decisions.iter().skip(user).step_by(2).filter(|d| d.unwrap().allowed).count()).collect();
        assert_eq!(allowed, [3, 3], "each user's burst of 3, however the checks were batched");
        let text = metrics.render();
        let value = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        assert_eq!(value("gateway_rate_limit_batch_size_sum"), 40.0);
        assert!(value("gateway_rate_limit_batch_size_count") < 40.0, "concurrent checks were batched");
        // A refused check took nothing from its IP: 40 checks, 6 allowed, 6 taken from the IPs.
        let left = limiter.check(&[(Rule::Ip, loose, "ip0".to_owned())]).await.unwrap();
        let taken_from_ip0 = decisions.iter().step_by(4).filter(|d| d.unwrap().allowed).count() as u64;
        assert_eq!(left.remaining, 1000 - taken_from_ip0 - 1);
    }

    #[tokio::test]
    async fn an_unreachable_redis_lets_requests_through_and_counts_them() {
        let mut config = ticketing_testkit::TestRedis::new().config.clone();
        config.url = "redis://127.0.0.1:1".into();
        let Limiter { limiter, metrics, .. } = limiter(&config);
        assert_eq!(limiter.check(&[(Rule::Ip, RateLimits::default().ip, "a".into())]).await, None);
        assert!(metrics.render().contains("gateway_rate_limit_unchecked_total{service=\"test\"} 1"));
    }

    #[tokio::test]
    async fn limits_apply_again_soon_after_redis_restarts() {
        let mut server = ticketing_testkit::redis_server::PrivateRedis::start();
        let config = ticketing_platform::redis::RedisConfig {
            url: server.url.clone(),
            key_prefix: "test:".into(),
            ca_file: None,
        };
        let Limiter { limiter, metrics, .. } = limiter(&config).connected().await;
        let once = [(Rule::Ip, Limit { per_second: 0.01, burst: 1 }, "a".to_owned())];
        assert!(limiter.check(&once).await.expect("checked").allowed);

        server.kill();
        let unchecked = tokio::time::timeout(Duration::from_secs(3), limiter.check(&once)).await;
        assert_eq!(unchecked.expect("no wait for Redis"), None, "let through unchecked");
        assert!(metrics.render().contains("gateway_rate_limit_unchecked_total{service=\"test\"} 1"));

        server.resume();
        let decision = ticketing_testkit::eventually("a checked request", Duration::from_secs(5), || async {
            limiter.check(&once).await
        })
        .await;
        assert!(!decision.allowed, "the burst spent before the restart is still spent");
    }
}
