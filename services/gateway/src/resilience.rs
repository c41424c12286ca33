//! What wraps each backend's gRPC channel: a circuit breaker (see [`crate::breaker`]) and
//! retries of calls that are safe to repeat, as a tower service under the generated
//! clients, so handlers keep calling `s.backends.catalog.clone().get_event(..)`.
//!
//! Retried, on UNAVAILABLE only (the backend did not answer, or asked to come back), with
//! jittered exponential backoff, never past the call's deadline:
//! - reads: methods named `Get*` or `List*` (reads by the API's naming rule) and
//!   inventory's `Availability` and `BatchAvailability`. `VerifyTicket` is not: it marks the ticket scanned, so
//!   a retry after a lost answer would turn a valid first scan into "already scanned";
//! - mutating calls marked with [`keyed`] that carry an idempotency key, which the
//!   backend replays (Stripe semantics). Nothing else is ever retried.
//!
//! A call the backend never answered (refused, reset, closed under it by a restart, or past
//! the deadline) is UNAVAILABLE whatever tonic called it (`unreachable`). The deadline bounds
//! the whole answer, not only its headers: a backend frozen between its headers and its
//! message must not hold the buyer past it ([`Bounded`]).
//!
//! The breaker counts each attempt, once its outcome is known: at the headers of an error
//! (trailers-only), at the end of the answer's body otherwise, so a backend lost between
//! its headers and its status counts as failing. Failures are those calls, DEADLINE_EXCEEDED and
//! UNAVAILABLE, except an UNAVAILABLE carrying retry advice: that backend is up and says
//! "not yet" (payment before it has heard of a booking). A call that runs out of time
//! (past the gateway's deadline, the channel's timeout, or the backend's own
//! DEADLINE_EXCEEDED) counts only when it is cheap: a call marked [`caller_paced`] runs as
//! long as its caller made it (a whole stadium's seat map, a card its processor answers
//! slowly), so its slowness says nothing about the backend, and one client must not open a
//! breaker for everyone (issue 16, ADR 0027). It counts neither way.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use backon::BackoffBuilder as _;
use futures::future::BoxFuture;
use http_body_util::BodyExt as _;
use prometheus::{IntCounter, IntGauge};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::ServiceExt as _;

use crate::breaker::{Breaker, Permit, State};
use crate::config::BreakerSettings;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Marks a request the backend deduplicates, so the gateway may repeat it.
#[derive(Debug, Clone, Copy)]
struct Repeatable;

/// A request message with an `Idempotency-Key`.
pub trait Keyed {
    /// The key; empty when the client sent none.
    fn idempotency_key(&self) -> &str;
}

macro_rules! keyed {
    ($($message:ty),*) => {$(
        impl Keyed for $message {
            fn idempotency_key(&self) -> &str {
                &self.idempotency_key
            }
        }
    )*};
}

keyed!(
    ticketing_proto::inventory::v1::HoldRequest,
    ticketing_proto::booking::v1::CreateBookingRequest,
    ticketing_proto::booking::v1::CancelBookingRequest,
    ticketing_proto::payment::v1::ChargeRequest
);

/// `request`, retried like a read when it carries an idempotency key.
pub fn keyed<T: Keyed>(request: tonic::Request<T>) -> tonic::Request<T> {
    if request.get_ref().idempotency_key().is_empty() { request } else { repeatable(request) }
}

/// `request`, retried like a read: the backend deduplicates every part of it (a batch whose
/// items all carry idempotency keys).
pub fn repeatable<T>(mut request: tonic::Request<T>) -> tonic::Request<T> {
    request.extensions_mut().insert(Repeatable);
    request
}

/// Marks a call whose running time its caller sets (see the module's notes).
#[derive(Debug, Clone, Copy)]
struct CallerPaced;

/// `request`, whose running out of time will not count against its backend.
pub fn caller_paced<T>(mut request: tonic::Request<T>) -> tonic::Request<T> {
    request.extensions_mut().insert(CallerPaced);
    request
}

/// Reads are safe to repeat.
fn is_read(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    method.starts_with("Get") || method.starts_with("List") || method.ends_with("Availability")
}

/// One backend's breaker and its metrics, shared by every clone of its client.
pub struct Guard {
    name: &'static str,
    breaker: Mutex<Breaker>,
    state: IntGauge,
    retries: IntCounter,
    deadline: Duration,
}

impl Guard {
    /// A closed breaker for `name`, reporting to `state` and `retries`.
    pub fn new(
        name: &'static str,
        settings: BreakerSettings,
        deadline: Duration,
        state: IntGauge,
        retries: IntCounter,
    ) -> Arc<Self> {
        state.set(State::Closed as i64);
        let breaker = Mutex::new(Breaker::new(settings, std::time::Instant::now()));
        Arc::new(Self { name, breaker, state, retries, deadline })
    }

    /// Runs `f` on the breaker and reports a change of state.
    fn with_breaker<R>(&self, f: impl FnOnce(&mut Breaker, std::time::Instant) -> R) -> R {
        let mut breaker = self.breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = breaker.state();
        let result = f(&mut breaker, std::time::Instant::now());
        let after = breaker.state();
        drop(breaker);
        if after != before {
            self.state.set(after as i64);
            match after {
                State::Open => tracing::warn!(backend = self.name, "circuit breaker opened: failing calls fast"),
                State::HalfOpen => tracing::info!(backend = self.name, "circuit breaker half-open: trying one call"),
                State::Closed => tracing::info!(backend = self.name, "circuit breaker closed: backend recovered"),
            }
        }
        result
    }
}

/// The outcome of one attempt.
enum Attempt<B> {
    /// A response, successful or not, that is final.
    Done(Result<Answer<B>, Status>),
    /// UNAVAILABLE: worth repeating when the call is safe to repeat.
    Unavailable(Result<Answer<B>, Status>),
}

/// A response whose headers came, and its verdict: still open when the outcome comes with
/// the body.
struct Answer<B> {
    response: http::Response<B>,
    verdict: Verdict,
}

/// A call's permit, held until its answer shows whether the backend served it; `None` once
/// recorded.
struct Verdict {
    guard: Arc<Guard>,
    permit: Option<Permit>,
    /// The caller set how long the call runs: running out of time is not the backend's failure.
    paced: bool,
}

impl Verdict {
    fn settle(&mut self, failed: bool, out_of_time: bool) {
        let Some(permit) = self.permit.take() else { return };
        if self.paced && out_of_time {
            self.guard.with_breaker(|b, now| b.release(permit, now));
        } else {
            self.guard.with_breaker(|b, now| b.record(permit, failed, now));
        }
    }
}

impl Drop for Verdict {
    /// The caller stopped reading (it gave up): that says nothing about the backend.
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.guard.with_breaker(|b, now| b.release(permit, now));
        }
    }
}

/// Whether a call that ended with `status` counts against its backend, and whether it ran
/// out of time.
fn judge(status: &Status) -> (bool, bool) {
    let code = status.code();
    let advised = tonic_types::StatusExt::get_error_details(status).retry_info().is_some();
    let out_of_time = code == Code::DeadlineExceeded;
    (out_of_time || (code == Code::Unavailable && !advised), out_of_time)
}

/// The channel `S` behind its backend's [`Guard`].
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, guard: Arc<Guard>) -> Self {
        Self { inner, guard }
    }
}

impl<S, B> tower::Service<http::Request<Body>> for Guarded<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
    B: Send + 'static,
{
    type Response = http::Response<Bounded<B>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call readies its own clone of the channel (a cheap handle to its buffer).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (inner, guard) = (self.inner.clone(), self.guard.clone());
        Box::pin(async move {
            let deadline = Instant::now() + guard.deadline;
            match call(inner, &guard, request, deadline).await {
                Ok(Answer { response, verdict }) => {
                    Ok(response.map(|inner| Bounded { inner, deadline, timer: None, backend: guard.name, verdict }))
                }
                Err(status) => Err(Box::new(status) as BoxError),
            }
        })
    }
}

/// An answer's body that fails UNAVAILABLE once the call's deadline has passed. Every backend
/// call is unary, so the deadline is the whole call's: a backend stopped after sending its
/// headers (SIGSTOP, a stalled node) held a buyer's request until it resumed, long after
/// the buyer's app gave up, and then acted on it.
pub struct Bounded<B> {
    inner: B,
    deadline: Instant,
    /// Made only when the body is not all there at once, which for a unary answer is rare.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    backend: &'static str,
    /// Recorded when the answer ends: at its trailers, its loss or its deadline.
    verdict: Verdict,
}

impl<B> http_body::Body for Bounded<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        let (failed, out_of_time) =
                            Status::from_header_map(trailers).map_or((false, false), |s| judge(&s));
                        self.verdict.settle(failed, out_of_time);
                    }
                }
                // Lost mid-answer, or ended without the status a gRPC answer ends with.
                Some(Err(_)) | None => self.verdict.settle(true, false),
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            self.verdict.settle(true, true);
            let late = Status::unavailable(format!("{} did not finish its answer in time", self.backend));
            return Poll::Ready(Some(Err(Box::new(late))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn call<S, B>(
    mut inner: S,
    guard: &Arc<Guard>,
    request: http::Request<Body>,
    deadline: Instant,
) -> Result<Answer<B>, Status>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
{
    let repeatable = is_read(request.uri().path()) || request.extensions().get::<Repeatable>().is_some();
    let paced = request.extensions().get::<CallerPaced>().is_some();
    if !repeatable {
        let (Attempt::Done(result) | Attempt::Unavailable(result)) =
            attempt(&mut inner, guard, request, deadline, paced).await;
        return result;
    }
    // A unary request's body is one small message: keep it to send again.
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|e| Status::internal(format!("reading the request: {e}")))?.to_bytes();
    let mut delays = backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(25))
        .with_max_delay(Duration::from_millis(500))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        let request = http::Request::from_parts(parts.clone(), Body::new(http_body_util::Full::new(body.clone())));
        match attempt(&mut inner, guard, request, deadline, paced).await {
            Attempt::Done(result) => return result,
            Attempt::Unavailable(result) => match delays.next() {
                Some(delay) if Instant::now() + delay < deadline => {
                    guard.retries.inc();
                    tokio::time::sleep(delay).await;
                }
                _ => return result,
            },
        }
    }
}

/// One call through the breaker, bounded by `deadline`; `paced`: its caller set how long it
/// runs, so running out of time is not the backend's failure.
async fn attempt<S, B>(
    inner: &mut S,
    guard: &Arc<Guard>,
    request: http::Request<Body>,
    deadline: Instant,
    paced: bool,
) -> Attempt<B>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
{
    let permit = match guard.with_breaker(|b, now| b.acquire(now)) {
        Ok(permit) => permit,
        Err(wait) => {
            // Whole seconds, rounded up: what `Retry-After` will say.
            let after = Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
            let message = format!("{} is failing; calls to it are paused", guard.name);
            return Attempt::Done(Err(ticketing_platform::status::retry_after(Code::Unavailable, message, after)));
        }
    };
    let call = async { inner.ready().await?.call(request).await };
    let (result, out_of_time) = match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(response)) => (Ok(response), false),
        Ok(Err(e)) => {
            let e: BoxError = e.into();
            let out_of_time = timed_out(&*e);
            (Err(unreachable(guard.name, &Status::from_error(e))), out_of_time)
        }
        Err(_) => (Err(Status::unavailable(format!("{} did not answer in time", guard.name))), true),
    };
    let mut verdict = Verdict { guard: guard.clone(), permit: Some(permit), paced };
    // Unary errors are trailers-only responses: the status is in the headers. Otherwise the
    // status comes after the message, and the answer's body records it.
    let settled = match &result {
        Err(status) => Some((status.code(), true, out_of_time)),
        Ok(response) => Status::from_header_map(response.headers()).map(|status| {
            let (failed, out_of_time) = judge(&status);
            (status.code(), failed, out_of_time)
        }),
    };
    let Some((code, failed, out_of_time)) = settled else {
        return Attempt::Done(result.map(|response| Answer { response, verdict }));
    };
    verdict.settle(failed, out_of_time);
    let result = result.map(|response| Answer { response, verdict });
    if code == Code::Unavailable { Attempt::Unavailable(result) } else { Attempt::Done(result) }
}

/// The channel's own timeout ran out (tonic's `TimeoutExpired`, maybe wrapped).
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<tonic::TimeoutExpired>())
}

/// A call that got no answer from the backend: refused, reset or closed under it, or no
/// answer before the deadline. tonic reports these as UNAVAILABLE, UNKNOWN ("transport
/// error", "connection reset"), CANCELLED (a connection that closed with the call on it, or
/// the channel's own timeout) or INTERNAL (an HTTP/2 error), depending on when the backend
/// died; they are one fact for a client, "not now, try again", so all are UNAVAILABLE (503
/// with `Retry-After`, and retried when the call is safe to repeat). A stopped process and a
/// slow one look alike from here, so a missed deadline is one too; only a backend that
/// answers DEADLINE_EXCEEDED itself is a 504.
fn unreachable(backend: &str, cause: &Status) -> Status {
    Status::unavailable(format!("{backend} is unreachable ({:?}: {})", cause.code(), cause.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_told_from_writes_by_method_name() {
        for read in [
            "/ticketing.catalog.v1.Catalog/GetEvent",
            "/ticketing.catalog.v1.Catalog/ListEvents",
            "/ticketing.inventory.v1.Inventory/Availability",
            "/ticketing.inventory.v1.Inventory/BatchAvailability",
            "/ticketing.identity.v1.Identity/GetJwks",
        ] {
            assert!(is_read(read), "{read}");
        }
        for write in [
            "/ticketing.inventory.v1.Inventory/Hold",
            "/ticketing.payment.v1.Payment/Charge",
            "/ticketing.notification.v1.Notification/VerifyTicket",
            "/ticketing.identity.v1.Identity/Login",
        ] {
            assert!(!is_read(write), "{write}");
        }
    }

    /// A backend that fails every call the way a channel does when the backend dies: `error`.
    async fn through_dying_backend(
        path: &str,
        error: fn() -> BoxError,
    ) -> (Result<http::Response<Body>, Status>, usize) {
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = attempts.clone();
        let inner = tower::service_fn(move |_: http::Request<Body>| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(Err::<http::Response<Body>, BoxError>(error()))
        });
        let settings = BreakerSettings { consecutive_failures: 1000, ..BreakerSettings::default() };
        let gauge = IntGauge::new("state", "state").unwrap();
        let retries = IntCounter::new("retries", "retries").unwrap();
        let guard = Guard::new("catalog", settings, Duration::from_millis(300), gauge, retries);
        let request = http::Request::builder().uri(path).body(Body::empty()).unwrap();
        let result = call(inner, &guard, request, Instant::now() + guard.deadline).await;
        (result.map(|answer| answer.response), attempts.load(std::sync::atomic::Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_backend_that_dies_under_a_call_is_unavailable_and_reads_are_retried() {
        let reset: fn() -> BoxError = || Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let closed: fn() -> BoxError = || Box::new(tonic::TimeoutExpired(()));
        let refused: fn() -> BoxError = || Box::new(Status::unavailable("tcp connect error"));
        for (what, error) in [("reset", reset), ("closed or timed out", closed), ("refused", refused)] {
            // Without the mapping, tonic calls these UNKNOWN, CANCELLED and UNAVAILABLE.
            let (result, attempts) = through_dying_backend("/ticketing.catalog.v1.Catalog/GetEvent", error).await;
            let status = result.expect_err(what);
            assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
            assert!(status.message().starts_with("catalog is unreachable"), "{what}: {status:?}");
            assert!(attempts > 1, "{what}: a read is retried within its deadline, tried {attempts}");

            let (result, attempts) = through_dying_backend("/ticketing.identity.v1.Identity/Login", error).await;
            assert_eq!(result.expect_err(what).code(), Code::Unavailable, "{what}");
            assert_eq!(attempts, 1, "{what}: an unkeyed write is never repeated");
        }
    }

    #[tokio::test]
    async fn an_answer_whose_message_never_comes_ends_at_the_deadline() {
        // Headers sent, then nothing: a backend stopped in the middle of its answer.
        let inner = tower::service_fn(|_: http::Request<Body>| async {
            let never = http_body_util::StreamBody::new(futures::stream::pending::<
                Result<http_body::Frame<axum::body::Bytes>, Status>,
            >());
            let response = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(Body::new(never))
                .expect("a response");
            Ok::<_, BoxError>(response)
        });
        let gauge = IntGauge::new("state", "state").unwrap();
        let retries = IntCounter::new("retries", "retries").unwrap();
        let guard = Guard::new("booking", BreakerSettings::default(), Duration::from_millis(300), gauge, retries);
        let mut client = ticketing_proto::booking::v1::booking_client::BookingClient::new(Guarded::new(inner, guard));
        let call = client.get_booking(ticketing_proto::booking::v1::GetBookingRequest::default());
        let answer = tokio::time::timeout(Duration::from_secs(10), call).await.expect("the call outlived its deadline");
        let status = answer.expect_err("no message came");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert_eq!(status.message(), "booking did not finish its answer in time");
    }

    /// A backend whose answers send their headers, then `frames`, on a breaker that opens
    /// after three failures in a row; the breaker's state after four calls, each read to its
    /// end or, with `give_up`, dropped after the headers.
    async fn breaker_after_answers(
        frames: fn() -> Vec<Result<http_body::Frame<axum::body::Bytes>, Status>>,
        give_up: bool,
    ) -> i64 {
        let inner = tower::service_fn(move |_: http::Request<Body>| async move {
            let body = http_body_util::StreamBody::new(futures::stream::iter(frames()));
            let response = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(Body::new(body))
                .expect("a response");
            Ok::<_, BoxError>(response)
        });
        let settings = BreakerSettings { consecutive_failures: 3, ..BreakerSettings::default() };
        let gauge = IntGauge::new("state", "state").unwrap();
        let retries = IntCounter::new("retries", "retries").unwrap();
        let guard = Guard::new("booking", settings, Duration::from_secs(5), gauge.clone(), retries);
        let mut channel = Guarded::new(inner, guard);
        for _ in 0..4 {
            let request = http::Request::builder()
                .uri("/ticketing.booking.v1.Booking/CreateBooking")
                .body(Body::empty())
                .unwrap();
            let Ok(response) = tower::Service::call(&mut channel, request).await else { continue };
            if !give_up {
                let _ = response.into_body().collect().await;
            }
        }
        gauge.get()
    }

    /// An empty gRPC message: a flag and a zero length.
    fn message() -> Result<http_body::Frame<axum::body::Bytes>, Status> {
        Ok(http_body::Frame::data(axum::body::Bytes::from_static(&[0, 0, 0, 0, 0])))
    }

    fn trailers(code: Code) -> Result<http_body::Frame<axum::body::Bytes>, Status> {
        let mut trailers = http::HeaderMap::new();
        Status::new(code, "").add_header(&mut trailers).expect("a status header");
        Ok(http_body::Frame::trailers(trailers))
    }

    #[tokio::test]
    async fn answers_lost_after_their_headers_open_the_breaker() {
        let lost = || vec![message(), Err(Status::unknown("connection reset"))];
        assert_eq!(breaker_after_answers(lost, false).await, State::Open as i64, "lost mid-answer");
        let unanswered = || vec![message()];
        assert_eq!(breaker_after_answers(unanswered, false).await, State::Open as i64, "no status at the end");
        let unavailable = || vec![message(), trailers(Code::Unavailable)];
        assert_eq!(breaker_after_answers(unavailable, false).await, State::Open as i64, "UNAVAILABLE in the trailers");

        let served = || vec![message(), trailers(Code::Ok)];
        assert_eq!(breaker_after_answers(served, false).await, State::Closed as i64, "served");
        let refused = || vec![message(), trailers(Code::FailedPrecondition)];
        assert_eq!(breaker_after_answers(refused, false).await, State::Closed as i64, "a business refusal");
        // The caller stopped reading: nothing is known about the backend.
        assert_eq!(breaker_after_answers(lost, true).await, State::Closed as i64, "the caller gave up");
    }

    #[test]
    fn only_requests_with_a_key_are_marked_repeatable() {
        let charge = |key: &str| ticketing_proto::payment::v1::ChargeRequest {
            idempotency_key: key.into(),
            ..Default::default()
        };
        assert!(keyed(tonic::Request::new(charge("k1"))).extensions().get::<Repeatable>().is_some());
        assert!(keyed(tonic::Request::new(charge(""))).extensions().get::<Repeatable>().is_none());
    }
}
