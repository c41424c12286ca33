//! HTTP middleware that works before and after the service it wraps, at no per-request
//! cost of its own: [`Around`] is a plain tower layer whose future is the inner service's,
//! wrapped in place.
//!
//! `axum::middleware::from_fn` is easier to write, but each request pays for it: a clone of
//! every service inside it, a boxed copy of that clone and a boxed future, at each layer.
//! Nested, the clones add up: the gateway's five `from_fn` layers were the largest single
//! cost of its per-request budget after the gRPC call (docs/benchmarks.md).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::response::Response;

/// What a middleware does: [`Self::before`] sees the request on its way in and returns what
/// its answer needs, which [`Finish::finish`] is given with that answer.
pub trait Hook: Clone {
    /// Carried from the request to its answer.
    type Pending: Finish;

    fn before(&self, request: &mut Request) -> Self::Pending;
}

/// The second half of a [`Hook`].
pub trait Finish {
    /// A span entered whenever the inner service runs.
    fn span(&self) -> Option<&tracing::Span> {
        None
    }

    /// Sees, and may change, the answer.
    fn finish(self, response: &mut Response);
}

/// The layer of a [`Hook`]: `Around::new(hook)` in a `ServiceBuilder`.
#[derive(Clone)]
pub struct Around<H> {
    hook: H,
}

impl<H> Around<H> {
    pub fn new(hook: H) -> Self {
        Self { hook }
    }
}

impl<H: Clone, S> tower::Layer<S> for Around<H> {
    type Service = AroundService<H, S>;

    fn layer(&self, inner: S) -> Self::Service {
        AroundService { hook: self.hook.clone(), inner }
    }
}

/// A service under an [`Around`] layer.
#[derive(Clone)]
pub struct AroundService<H, S> {
    hook: H,
    inner: S,
}

impl<H, S> tower::Service<Request> for AroundService<H, S>
where
    H: Hook,
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Finishing<S::Future, H::Pending>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let pending = self.hook.before(&mut request);
        Finishing { inner: self.inner.call(request), pending: Some(pending) }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, then the hook's [`Finish`].
    pub struct Finishing<F, P> {
        #[pin]
        inner: F,
        pending: Option<P>,
    }
}

impl<F, P, E> Future for Finishing<F, P>
where
    F: Future<Output = Result<Response, E>>,
    P: Finish,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let entered = this.pending.as_ref().and_then(Finish::span).map(tracing::Span::enter);
        let mut output = ready!(this.inner.poll(cx));
        drop(entered);
        if let (Ok(response), Some(pending)) = (&mut output, this.pending.take()) {
            pending.finish(response);
        }
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::HeaderValue;
    use tower::{Layer as _, ServiceExt as _};

    use super::*;

    /// Counts requests in, and stamps each answer with the path it was for.
    #[derive(Clone, Default)]
    struct Stamp(Arc<AtomicUsize>);

    struct Stamped(String);

    impl Hook for Stamp {
        type Pending = Stamped;

        fn before(&self, request: &mut Request) -> Stamped {
            self.0.fetch_add(1, Ordering::Relaxed);
            request.headers_mut().insert("x-seen", HeaderValue::from_static("yes"));
            Stamped(request.uri().path().to_owned())
        }
    }

    impl Finish for Stamped {
        fn finish(self, response: &mut Response) {
            response.headers_mut().insert("x-path", HeaderValue::from_str(&self.0).expect("a path is a header value"));
        }
    }

    #[tokio::test]
    async fn the_hook_sees_the_request_before_and_the_answer_after_the_inner_service() {
        let hook = Stamp::default();
        let inner = tower::service_fn(|request: Request| async move {
            // The inner service sees what `before` did.
            let seen = request.headers().get("x-seen").cloned();
            tokio::task::yield_now().await;
            let mut response = Response::new(axum::body::Body::empty());
            if let Some(seen) = seen {
                response.headers_mut().insert("x-inner-saw", seen);
            }
            Ok::<_, Infallible>(response)
        });
        let service = Around::new(hook.clone()).layer(inner);
        let request = Request::builder().uri("/v1/things/7").body(axum::body::Body::empty()).expect("a request");
        let response = service.oneshot(request).await.expect("infallible");
        assert_eq!(response.headers()["x-inner-saw"], "yes");
        assert_eq!(response.headers()["x-path"], "/v1/things/7");
        assert_eq!(hook.0.load(Ordering::Relaxed), 1);
    }
}
