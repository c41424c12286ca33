//! GraphiQL at `GET /graphql`, from files vendored in `services/gateway/assets/graphiql`
//! (GraphiQL 3.8.3 and React 18.3.1, MIT): async-graphql's own page loads them from a CDN,
//! which an offline or locked-down deployment cannot reach and the page's CSP forbids.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::embedded::{self, File, gzipped};

/// The page; its script is a file, as the CSP allows no inline script.
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>Ticketing GraphQL</title>
    <link rel="stylesheet" href="/graphql/assets/graphiql.min.css" />
    <style>body { margin: 0; } #graphiql { height: 100vh; }</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script src="/graphql/assets/react.production.min.js"></script>
    <script src="/graphql/assets/react-dom.production.min.js"></script>
    <script src="/graphql/assets/graphiql.min.js"></script>
    <script src="/graphql/assets/init.js"></script>
  </body>
</html>
"#;

/// Signed-in queries (`me`) take `{"Authorization": "Bearer <token>"}` in the headers tab.
const INIT: &str = r#"const fetcher = GraphiQL.createFetcher({ url: "/graphql" });
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: true,
    defaultQuery: [
      "{",
      "  events(first: 5) {",
      "    items {",
      "      name",
      "      startsAt",
      "      categories { name price { currency minorUnits } availability { available } }",
      "    }",
      "  }",
      "}",
    ].join("\n"),
  }),
);
"#;

/// `name`'s bytes and media type, if the page loads it.
fn asset(name: &str) -> Option<(File, &'static str)> {
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match name {
        "init.js" => (File::Plain(INIT.as_bytes()), JS),
        "graphiql.min.js" => (gzipped!("graphiql/graphiql.min.js"), JS),
        "graphiql.min.css" => (gzipped!("graphiql/graphiql.min.css"), "text/css; charset=utf-8"),
        "react.production.min.js" => (gzipped!("graphiql/react.production.min.js"), JS),
        "react-dom.production.min.js" => (gzipped!("graphiql/react-dom.production.min.js"), JS),
        _ => return None,
    })
}

/// GraphiQL, to explore the schema and run queries from a browser.
#[utoipa::path(get, path = "/graphql", tag = "graphql",
    responses((status = 200, description = "The GraphiQL page", content_type = "text/html")))]
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::http::GRAPHIQL_CSP)),
        ],
        PAGE,
    )
        .into_response()
}

/// The page's files, under `/graphql/assets/`.
pub fn assets() -> Router {
    Router::new().route(
        "/graphql/assets/{file}",
        get(
            |Path(file): Path<String>, request: HeaderMap| async move { embedded::serve(asset(&file), &request).await },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_served_from_here() {
        let loaded: Vec<&str> = PAGE.split('"').filter_map(|part| part.strip_prefix("/graphql/assets/")).collect();
        assert_eq!(loaded.len(), 5);
        for file in loaded {
            assert!(asset(file).is_some(), "the page loads {file}, which is not served");
        }
        assert!(!PAGE.contains("//unpkg") && !PAGE.contains("https:"), "nothing from a CDN");
        assert!(asset("../../Cargo.toml").is_none());
    }
}
