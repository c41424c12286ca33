//! The files the gateway serves from its own binary (Swagger UI's and GraphiQL's). Their
//! scripts and styles are embedded gzipped by the build script, 5.9 MB as 1.5 MB (the binary
//! is the image; docs/benchmarks.md), and sent as they are to any client that takes gzip,
//! as every browser does; any other gets them inflated on the fly.

use std::io::Read as _;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// `OUT_DIR/NAME.gz`, a file the build script gzipped.
macro_rules! gzipped {
    ($file:literal) => {
        $crate::embedded::File::Gzipped(include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".gz")))
    };
}
pub(crate) use gzipped;

/// A file's bytes, as embedded.
pub enum File {
    /// As served: a page or script written here, or an image, which gzip cannot shrink.
    Plain(&'static [u8]),
    /// Gzipped (the build script's `NAME.gz`).
    Gzipped(&'static [u8]),
}

/// `file` as `media_type`, gzipped if it is and `request` takes gzip; not found for `None`.
pub async fn serve(file: Option<(File, &'static str)>, request: &HeaderMap) -> Response {
    let Some((file, media_type)) = file else {
        return Problem::not_found("no such file").into_response();
    };
    let mut response = match file {
        File::Plain(bytes) => Bytes::from_static(bytes).into_response(),
        File::Gzipped(gz) => {
            let mut response = if accepts_gzip(request) {
                ([(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))], Bytes::from_static(gz)).into_response()
            } else {
                // Megabytes at most, off the runtime's threads; only for the odd client such
                // as curl without `--compressed`, so none is kept.
                tokio::task::spawn_blocking(move || inflate(gz)).await.expect("inflating").into_response()
            };
            response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            response
        }
    };
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

/// What the build script gzipped, as it was.
fn inflate(gz: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut bytes).expect("the build script wrote valid gzip");
    bytes
}

/// Whether `Accept-Encoding` takes gzip: named (`x-gzip` too), or else covered by `*`, with
/// a q-value above 0. Without the header, no: RFC 9110 lets a server pick any coding then,
/// but curl and scripts send none and would get bytes they do not inflate.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    let values = request.get_all(header::ACCEPT_ENCODING).iter().filter_map(|value| value.to_str().ok());
    for entry in values.flat_map(|value| value.split(',')) {
        let mut parts = entry.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let q = parts.find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim().eq_ignore_ascii_case("q").then(|| value.trim())
        });
        // An unreadable q-value refuses rather than guesses.
        let accepted = q.map_or(Some(1.0), |q| q.parse::<f32>().ok()).is_some_and(|q| q > 0.0 && q <= 1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(accepted);
        } else if coding == "*" {
            any = Some(accepted);
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    use tower_http::compression::CompressionLayer;

    use super::*;

    #[test]
    fn gzip_is_taken_when_named_or_starred_with_a_q_value_above_zero() {
        for (header, taken) in [
            (None, false),
            (Some("gzip"), true),
            (Some("gzip, deflate, br, zstd"), true),
            (Some("br;q=1.0, GZIP;q=0.5"), true),
            (Some("x-gzip"), true),
            (Some("*"), true),
            (Some("identity"), false),
            (Some("br, deflate"), false),
            (Some("gzip;q=0"), false),
            (Some("gzip; q=0.000"), false),
            (Some("*;q=0"), false),
            (Some("gzip;q=0, *"), false),
            (Some("*, gzip;q=0"), false),
            (Some("*;q=0, gzip"), true),
            (Some("gzip;q=high"), false),
            (Some("gzip;q=2"), false),
            (Some(""), false),
        ] {
            let request = HeaderMap::from_iter(
                header.map(|value| (header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap())),
            );
            assert_eq!(accepts_gzip(&request), taken, "{header:?}");
        }
        let split = [(header::ACCEPT_ENCODING, "br"), (header::ACCEPT_ENCODING, "gzip")]
            .map(|(name, value)| (name, HeaderValue::from_static(value)));
        assert!(accepts_gzip(&HeaderMap::from_iter(split)), "a header sent twice counts as one list");
    }

    /// tower-http's compression leaves a response with a `Content-Encoding` alone, so a
    /// router that compresses its answers would not gzip these twice (nor inflate them).
    #[tokio::test]
    async fn a_compressing_router_passes_the_gzipped_files_through() {
        const TEXT: &[u8] = b"body { margin: 0; } body { margin: 0; } body { margin: 0; }";
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gzip, TEXT).unwrap();
        let gz: &'static [u8] = gzip.finish().unwrap().leak();
        let router =
            Router::new()
                .route(
                    "/file",
                    get(move |request: HeaderMap| async move {
                        serve(Some((File::Gzipped(gz), "text/css")), &request).await
                    }),
                )
                .layer(CompressionLayer::new());
        for (accepted, encoding, body) in [("gzip", Some("gzip"), gz), ("identity", None, TEXT), ("br", None, TEXT)] {
            let request =
                Request::get("/file").header(header::ACCEPT_ENCODING, accepted).body(axum::body::Body::empty());
            let response = router.clone().oneshot(request.unwrap()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let headers = response.headers().clone();
            assert_eq!(headers.get(header::CONTENT_ENCODING).map(|e| e.to_str().unwrap()), encoding, "{accepted}");
            assert_eq!(headers[header::VARY], "accept-encoding", "{accepted}");
            assert_eq!(headers[header::CONTENT_TYPE], "text/css");
            assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), body, "{accepted}");
        }
    }
}
