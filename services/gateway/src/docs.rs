//! The OpenAPI document at `/openapi.json` and Swagger UI at `/docs`, served from the
//! vendored files the build script unpacked: never from a CDN, and only what the page
//! loads: the whole release is 11 MB, and the binary is the image (docs/deploy.md).

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::problem::Problem;

/// The page: Swagger UI's own, with the initializer as a file (the CSP allows no inline script).
const INDEX: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>Ticketing API</title>
    <link rel="stylesheet" type="text/css" href="./swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="./index.css" />
    <link rel="icon" type="image/png" href="./favicon-32x32.png" sizes="32x32" />
    <link rel="icon" type="image/png" href="./favicon-16x16.png" sizes="16x16" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="./swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"#;

const INITIALIZER: &str = r##"window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  });
};
"##;

/// `name`'s bytes and media type, if `/docs` serves it.
fn asset(name: &str) -> Option<(&'static [u8], &'static str)> {
    macro_rules! unpacked {
        ($file:literal) => {
            include_bytes!(concat!(env!("OUT_DIR"), "/", $file))
        };
    }
    Some(match name {
        "index.html" => (INDEX.as_bytes(), "text/html; charset=utf-8"),
        "swagger-initializer.js" => (INITIALIZER.as_bytes(), "text/javascript; charset=utf-8"),
        "swagger-ui-bundle.js" => (unpacked!("swagger-ui-bundle.js"), "text/javascript; charset=utf-8"),
        "swagger-ui-standalone-preset.js" => {
            (unpacked!("swagger-ui-standalone-preset.js"), "text/javascript; charset=utf-8")
        }
        "swagger-ui.css" => (unpacked!("swagger-ui.css"), "text/css; charset=utf-8"),
        "index.css" => (unpacked!("index.css"), "text/css; charset=utf-8"),
        "favicon-32x32.png" => (unpacked!("favicon-32x32.png"), "image/png"),
        "favicon-16x16.png" => (unpacked!("favicon-16x16.png"), "image/png"),
        _ => return None,
    })
}

fn serve(name: &str) -> Response {
    match asset(name) {
        Some((bytes, media_type)) => {
            ([(header::CONTENT_TYPE, HeaderValue::from_static(media_type))], Bytes::from_static(bytes)).into_response()
        }
        None => Problem::not_found("no such file").into_response(),
    }
}

/// `/openapi.json` (`openapi`, serialized once) and `/docs`.
pub fn router(openapi: &utoipa::openapi::OpenApi) -> Router {
    let spec = Bytes::from(openapi.to_json().expect("the OpenAPI document serializes"));
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], spec.clone()) }),
        )
        .route("/docs", get(|| async { Redirect::permanent("/docs/") }))
        .route("/docs/", get(|| async { serve("index.html") }))
        .route("/docs/{file}", get(|Path(file): Path<String>| async move { serve(&file) }))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn every_file_the_page_loads_is_served() {
        let loaded = INDEX.split(['"', '\'']).filter_map(|part| part.strip_prefix("./"));
        for file in loaded {
            assert!(asset(file).is_some(), "the page loads {file}, which /docs does not serve");
        }
        assert!(asset("swagger-ui-bundle.js").is_some_and(|(bytes, _)| bytes.len() > 100_000));
        assert!(asset("swagger-ui-bundle.js.map").is_none());
        assert_eq!(serve("../Cargo.toml").status(), StatusCode::NOT_FOUND);
    }
}
