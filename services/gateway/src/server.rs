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
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
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
pub async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    // Most requests have no body: no timer for them.
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let flag = expired.clone();
    let request =
        request.map(|inner| Body::new(Deadline { inner, timer: Box::pin(tokio::time::sleep(timeout)), expired: flag }));
    let response = next.run(request).await;
    if expired.load(Ordering::Relaxed) {
        let detail = format!("the request body did not arrive within {} s", timeout.as_secs());
        return Problem::new(StatusCode::REQUEST_TIMEOUT, "request-timeout", "Request timeout", detail).into_response();
    }
    response
}

/// A request body that fails once its deadline has passed.
struct Deadline {
    inner: Body,
    timer: Pin<Box<tokio::time::Sleep>>,
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
        if self.timer.as_mut().poll(cx).is_ready() {
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
