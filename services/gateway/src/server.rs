//! The public HTTP server's connections and request bodies, bounded in time. `axum::serve`
//! sets no header-read timeout and a body may trickle in for ever, so a slow client held a
//! connection and a concurrency slot as long as it liked: here a client has
//! `gateway.header_read_timeout` to send its headers (then the connection is closed) and
//! `gateway.body_read_timeout` after them to send its body (then it gets a 408).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ticketing_platform::middleware::{Finish, Hook};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::problem::Problem;

/// Serves `router` on `listener` until `stop`, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // The peer's address is the client's IP for rate limits (unless proxies are trusted).
    let mut connections = router.into_make_service_with_connect_info::<SocketAddr>();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, typically: wait for some to close.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let ready = ServiceExt::<SocketAddr>::ready(&mut connections).await?;
        let service = tower::Service::<SocketAddr>::call(ready, peer).await?;
        let service =
            TowerToHyperService::new(service.map_request(|r: Request<hyper::body::Incoming>| r.map(Body::new)));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Middleware: a body not received whole `timeout` after the headers is a 408, whatever
/// the handler made of the error it read.
#[derive(Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Whether a request's body missed its deadline: `None` for a request without a body.
pub struct Deadlined {
    expired: Option<Arc<AtomicBool>>,
    timeout: Duration,
}

impl Hook for BodyDeadline {
    type Pending = Deadlined;

    fn before(&self, request: &mut Request) -> Deadlined {
        let timeout = self.0;
        // Most requests have no body: no deadline for them.
        if request.body().is_end_stream() {
            return Deadlined { expired: None, timeout };
        }
        let expired = Arc::new(AtomicBool::new(false));
        let inner = std::mem::take(request.body_mut());
        let deadline = tokio::time::Instant::now() + timeout;
        *request.body_mut() = Body::new(Deadline { inner, deadline, timer: None, expired: expired.clone() });
        Deadlined { expired: Some(expired), timeout }
    }
}

impl Finish for Deadlined {
    fn finish(self, response: &mut Response) {
        if self.expired.is_some_and(|e| e.load(Ordering::Relaxed)) {
            let detail = format!("the request body did not arrive within {} s", self.timeout.as_secs());
            *response =
                Problem::new(StatusCode::REQUEST_TIMEOUT, "request-timeout", "Request timeout", detail).into_response();
        }
    }
}

/// A request body that fails once its deadline has passed.
struct Deadline {
    inner: Body,
    deadline: tokio::time::Instant,
    /// Made only when the body is not all there at once: most arrive with their headers.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    expired: Arc<AtomicBool>,
}

/// What a body read past its deadline fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
