//! The large public answers (a stadium's seat states, a venue's seat map: megabytes each)
//! served from a snapshot each replica keeps for `gateway.snapshot_ttl`, so that a crowd
//! refreshing a seat map costs the backend one call per replica and TTL, not one per
//! request. Concurrent misses of one key wait for one backend call (moka's `try_get_with`);
//! failures are not kept. Each answer carries a strong `ETag` of its bytes, and a request
//! whose `If-None-Match` names it gets a 304 without the body.
//!
//! What a snapshot shows may be up to a TTL old; holds are still decided by inventory.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::Digest as _;

use crate::problem::Problem;

/// Bytes of snapshots a replica keeps at most: a 52,000-seat event's seat states are about
/// 6 MB, so a few dozen of the largest.
const MAX_BYTES: u64 = 256 << 20;

/// The snapshots of one replica.
#[derive(Clone)]
pub struct Snapshots {
    cache: moka::future::Cache<String, Arc<Snapshot>>,
    loads: prometheus::IntCounterVec,
}

/// One answer's bytes and their entity tag.
#[derive(Debug)]
pub struct Snapshot {
    body: Bytes,
    etag: HeaderValue,
}

impl Snapshots {
    /// Snapshots kept for `ttl`, their backend calls counted in `metrics` as
    /// `gateway_snapshot_loads_total{kind}`.
    pub fn new(ttl: Duration, metrics: &ticketing_platform::metrics::Metrics) -> anyhow::Result<Self> {
        let loads = metrics.register(&prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "gateway_snapshot_loads_total",
                "Backend calls made to refresh the snapshots of large public answers.",
            ),
            &["kind"],
        )?);
        let cache = moka::future::Cache::builder()
            .time_to_live(ttl)
            .weigher(|_, snapshot: &Arc<Snapshot>| u32::try_from(snapshot.body.len()).unwrap_or(u32::MAX))
            .max_capacity(MAX_BYTES)
            .build();
        Ok(Self { cache, loads })
    }

    /// The snapshot of `kind` `id`, made from what `load` answers when there is none.
    pub async fn get<T: Serialize>(
        &self,
        kind: &'static str,
        id: &str,
        load: impl Future<Output = Result<T, Problem>>,
    ) -> Result<Arc<Snapshot>, Problem> {
        let init = async {
            self.loads.with_label_values(&[kind]).inc();
            Snapshot::of(&load.await?)
        };
        self.cache.try_get_with(format!("{kind}:{id}"), init).await.map_err(|e: Arc<Problem>| (*e).clone())
    }
}

impl Snapshot {
    fn of(value: &impl Serialize) -> Result<Arc<Self>, Problem> {
        let body = serde_json::to_vec(value).map_err(|e| {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", e.to_string())
        })?;
        let digest = sha2::Sha256::digest(&body);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::try_from(format!("\"{hex}\"")).expect("hex digits are a valid header value");
        Ok(Arc::new(Self { body: body.into(), etag }))
    }

    /// The answer to a request with `headers`: 304 when its `If-None-Match` names this
    /// snapshot, else the JSON.
    pub fn respond(&self, headers: &HeaderMap) -> Response {
        if not_modified(headers, &self.etag) {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, self.etag.clone())]).into_response();
        }
        let headers =
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json")), (header::ETAG, self.etag.clone())];
        (headers, self.body.clone()).into_response()
    }
}

/// The 304 of a snapshot's route, for the API document.
#[derive(utoipa::IntoResponses)]
#[response(status = 304, description = "Not modified: `If-None-Match` names the current snapshot",
    headers(("ETag" = String, description = "The snapshot's strong entity tag")))]
pub struct NotModified;

/// The conditional header of a snapshot's route, for the API document (handlers read it
/// from the header map).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Revalidation {
    /// An `ETag` of an earlier answer: a 304 while it is still the current one.
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

/// `If-None-Match` names `etag` or is `*`; compared weakly (RFC 9110 §13.1.2), so a tag a
/// compressing proxy weakened still matches.
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|tag| tag.trim_ascii())
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_none_match(value: &str) -> HeaderMap {
        HeaderMap::from_iter([(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap())])
    }

    #[test]
    fn if_none_match_names_the_snapshot_in_a_list_weakly_or_with_a_star() {
        let snapshot = Snapshot::of(&serde_json::json!({"seats": [1, 2, 3]})).unwrap();
        let etag = snapshot.etag.to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34, "{etag}");
        for matching in [etag.clone(), format!("\"x\", {etag}"), format!("W/{etag}"), "*".into()] {
            let response = snapshot.respond(&if_none_match(&matching));
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{matching}");
            assert_eq!(response.headers()[header::ETAG], etag.as_str());
        }
        for other in ["\"x\"", "", "W/\"y\""] {
            assert_eq!(snapshot.respond(&if_none_match(other)).status(), StatusCode::OK, "{other}");
        }
        let fresh = snapshot.respond(&HeaderMap::new());
        assert_eq!(fresh.headers()[header::CONTENT_TYPE], "application/json");
        let other = Snapshot::of(&serde_json::json!({"seats": [1, 2]})).unwrap();
        assert_ne!(other.etag, snapshot.etag, "the tag follows the bytes");
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_load_and_failures_are_not_kept() {
        let metrics = ticketing_platform::metrics::Metrics::new("test");
        let snapshots = Snapshots::new(Duration::from_secs(60), &metrics).unwrap();
        let (go, wait) = tokio::sync::watch::channel(false);
        let gets = (0..8).map(|_| {
            let mut wait = wait.clone();
            snapshots.get("seats", "e1", async move {
                let _ = wait.wait_for(|go| *go).await;
                Ok::<_, Problem>(vec![1, 2, 3])
            })
        });
        let mut all = std::pin::pin!(futures::future::join_all(gets));
        // One pass: every get has asked, and the first is loading until told to go.
        assert!(futures::poll!(all.as_mut()).is_pending());
        go.send_replace(true);
        let got = all.await;
        assert!(got.iter().all(|s| s.as_ref().unwrap().etag == got[0].as_ref().unwrap().etag));
        assert_eq!(snapshots.loads.with_label_values(&["seats"]).get(), 1);

        let failed = snapshots.get::<u8>("seats", "e2", async { Err(Problem::not_found("no event")) }).await;
        assert_eq!(failed.unwrap_err().status, 404);
        snapshots.get("seats", "e2", async { Ok::<_, Problem>(1) }).await.expect("loaded again after a failure");
        assert_eq!(snapshots.loads.with_label_values(&["seats"]).get(), 3);
    }
}
