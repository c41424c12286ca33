//! The OpenAPI document at `/openapi.json` and Swagger UI at `/docs`, served from the
//! vendored files the build script unpacked: never from a CDN, and only what the page
//! loads: the whole release is 11 MB, and the binary is the image (docs/deploy.md).

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, header};
use axum::response::Redirect;
use axum::routing::get;

use crate::embedded::{self, File, gzipped};

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
fn asset(name: &str) -> Option<(File, &'static str)> {
    macro_rules! image {
        ($file:literal) => {
            File::Plain(include_bytes!(concat!(env!("OUT_DIR"), "/", $file)))
        };
    }
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match name {
        "index.html" => (File::Plain(INDEX.as_bytes()), "text/html; charset=utf-8"),
        "swagger-initializer.js" => (File::Plain(INITIALIZER.as_bytes()), JS),
        "swagger-ui-bundle.js" => (gzipped!("swagger-ui-bundle.js"), JS),
        "swagger-ui-standalone-preset.js" => (gzipped!("swagger-ui-standalone-preset.js"), JS),
        "swagger-ui.css" => (gzipped!("swagger-ui.css"), "text/css; charset=utf-8"),
        "index.css" => (gzipped!("index.css"), "text/css; charset=utf-8"),
        "favicon-32x32.png" => (image!("favicon-32x32.png"), "image/png"),
        "favicon-16x16.png" => (image!("favicon-16x16.png"), "image/png"),
        _ => return None,
    })
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
        .route("/docs/", get(|request: HeaderMap| async move { embedded::serve(asset("index.html"), &request).await }))
        .route(
            "/docs/{file}",
            get(|Path(file): Path<String>, request: HeaderMap| async move {
                embedded::serve(asset(&file), &request).await
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_served() {
        let loaded = INDEX.split(['"', '\'']).filter_map(|part| part.strip_prefix("./"));
        for file in loaded {
            assert!(asset(file).is_some(), "the page loads {file}, which /docs does not serve");
        }
        assert!(matches!(asset("swagger-ui-bundle.js"), Some((File::Gzipped(gz), _)) if gz.len() > 100_000));
        assert!(asset("swagger-ui-bundle.js.map").is_none());
        assert!(asset("../Cargo.toml").is_none());
    }
}
