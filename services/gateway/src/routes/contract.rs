//! What every operation can answer besides its own responses, added to the OpenAPI document
//! in one place, from what the layers and extractors really send (`http.rs`, `server.rs`,
//! `extract.rs`, `ratelimit.rs`), so that no route can forget one: problems are
//! `application/problem+json`; a body can arrive too slowly (408); a typed JSON body can be
//! malformed (400), too large (413), of another media type (415) or of the wrong shape (422); a path id, query string or
//! header can be malformed (400); a bearer token can be missing or bad (401); a keyed
//! request can be in progress (409) or reuse its key (422); and every API route can meet
//! the limiter (429), a failed backend (502), load shedding or an unavailable backend
//! (503), and a backend timeout (504).

use utoipa::Modify;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Ref, Type};
use utoipa::openapi::{OpenApi, RefOr};

/// The media type of every problem document (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The [`Modify`] that makes the document say what the server sends.
pub struct Contract;

impl Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                complete(operation);
            }
        }
    }
}

/// The statuses `operation` can answer whatever it declares, each with its reason.
fn implied(operation: &Operation) -> Vec<(&'static str, &'static str)> {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let takes = |place: ParameterIn| parameters.iter().any(|p| p.parameter_in == place);
    let keyed = parameters.iter().any(|p| p.name.eq_ignore_ascii_case("idempotency-key"));
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let body = operation.request_body.as_ref();
    // A body whose schema is a type of ours is parsed by `extract::Json`; an inline one (the
    // webhooks' raw bytes) is passed on as it came.
    let json = body.is_some_and(|b| b.content.values().any(|c| matches!(c.schema, Some(RefOr::Ref(_)))));

    let mut statuses = Vec::new();
    if body.is_some() || takes(ParameterIn::Path) || takes(ParameterIn::Query) || takes(ParameterIn::Header) {
        statuses.push(("400", "Malformed JSON, or a bad field, path id, query parameter or header (see `errors`)"));
    }
    if secured {
        statuses.push(("401", "No bearer token, or an invalid or expired one"));
    }
    if keyed {
        statuses.push(("409", "A request with this `Idempotency-Key` is still in progress (`in-progress`)"));
    }
    if body.is_some() {
        statuses
            .push(("408", "The body did not arrive whole within the gateway's body-read timeout (`request-timeout`)"));
        statuses.push(("413", "The body is larger than the gateway accepts"));
    }
    if json {
        statuses.push(("415", "The body is not `application/json`"));
        statuses.push((
            "422",
            if keyed {
                "A field of the wrong type or an unknown field (`invalid-body`), or the `Idempotency-Key` was used for \
                 a different request (`idempotency-key-reused`)"
            } else {
                "A field of the wrong type or an unknown field (`invalid-body`)"
            },
        ));
    } else if keyed {
        statuses.push(("422", "The `Idempotency-Key` was used for a different request (`idempotency-key-reused`)"));
    }
    statuses.extend([
        ("429", "Too many requests from this client or user (`rate-limited`); retry after `Retry-After`"),
        ("502", "A backend failed (`backend-error`)"),
        (
            "503",
            "Overloaded, or a backend is unavailable, restarting or did not answer in time (`unavailable`); retry \
             after `Retry-After`",
        ),
        ("504", "A backend answered that its own work ran out of time (`timeout`); retry after `Retry-After`"),
    ]);
    statuses
}

fn complete(operation: &mut Operation) {
    for (status, description) in implied(operation) {
        operation.responses.responses.entry(status.to_owned()).or_insert_with(|| problem(status, description).into());
    }
    for (status, response) in &mut operation.responses.responses {
        let RefOr::T(response) = response else { continue };
        if let Some(content) = response.content.shift_remove("application/json") {
            if matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem")) {
                response.content.insert(PROBLEM_JSON.to_owned(), content);
                if response.description.is_empty() {
                    response.description = default_description(status).to_owned();
                }
            } else {
                response.content.insert("application/json".to_owned(), content);
            }
        }
    }
}

/// A problem response; those that ask the client to wait say so in `Retry-After`.
fn problem(status: &str, description: &str) -> Response {
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build());
    if matches!(status, "429" | "503") {
        let seconds = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
            .description(Some("Seconds to wait before retrying"))
            .build();
        builder = builder.header("Retry-After", seconds);
    }
    builder.build()
}

/// What a problem status means when its route says nothing more.
fn default_description(status: &str) -> &'static str {
    match status {
        "400" => "A bad field, path id, query parameter or header (see `errors`)",
        "401" => "No bearer token, or an invalid or expired one",
        "403" => "The caller's role or ownership does not allow this",
        "404" => "No such resource, or not the caller's to see",
        "409" => "Not possible in the resource's current state (`conflict`)",
        "408" => "The body did not arrive in time (`request-timeout`)",
        "413" => "The body is larger than the gateway accepts",
        "422" => "The request is well-formed but refused",
        "503" => "Overloaded or a backend is unavailable; retry after `Retry-After`",
        _ => "A problem document",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> OpenApi {
        crate::routes::api(&crate::config::GatewaySettings::default()).1
    }

    fn statuses(openapi: &OpenApi, path: &str, method: &str) -> Vec<String> {
        let item = &openapi.paths.paths[path];
        let operation = match method {
            "get" => &item.get,
            "post" => &item.post,
            "delete" => &item.delete,
            "put" => &item.put,
            _ => &item.patch,
        };
        operation.as_ref().unwrap_or_else(|| panic!("{method} {path}")).responses.responses.keys().cloned().collect()
    }

    #[test]
    fn every_problem_is_problem_json_and_every_operation_lists_what_the_layers_send() {
        let openapi = document();
        let json = serde_json::to_value(&openapi).unwrap();
        let mut problems = 0;
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                for status in ["429", "502", "503", "504"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
                for (status, response) in responses {
                    let content = response["content"].as_object().cloned().unwrap_or_default();
                    if content.values().any(|c| c["schema"]["$ref"] == "#/components/schemas/Problem") {
                        assert!(content.contains_key(PROBLEM_JSON), "{method} {path} {status}: {content:?}");
                        assert!(!content.contains_key("application/json"), "{method} {path} {status}");
                        assert!(!response["description"].as_str().unwrap().is_empty(), "{method} {path} {status}");
                        problems += 1;
                    }
                }
            }
        }
        assert!(problems > 100, "{problems}");
    }

    #[test]
    fn bodies_ids_keys_and_tokens_imply_their_statuses() {
        let openapi = document();
        let has = |path, method, wanted: &[&str]| {
            let found = statuses(&openapi, path, method);
            for status in wanted {
                assert!(found.iter().any(|s| s == status), "{method} {path} lacks {status}: {found:?}");
            }
        };
        has("/v1/events/{id}/holds", "post", &["400", "401", "408", "409", "413", "415", "422"]);
        has("/v1/venues/{id}/seatmap", "put", &["401", "403", "408", "413", "503"]);
        has("/v1/events/{id}/availability", "get", &["304", "429"]);
        has("/v1/venues/{id}", "get", &["304", "429"]);
        has("/v1/holds/{id}", "delete", &["400", "401"]);
        has("/v1/venues", "post", &["413", "415", "422"]);
        has("/v1/events", "post", &["415", "422"]);
        has("/v1/events", "get", &["400"]);
        // The webhook's raw body is not parsed: no 415 or 422.
        let webhook = statuses(&openapi, "/v1/webhooks/payments/{provider}", "post");
        assert!(webhook.contains(&"413".to_owned()) && !webhook.contains(&"415".to_owned()), "{webhook:?}");
        let events = statuses(&openapi, "/v1/events", "get");
        assert!(!events.contains(&"401".to_owned()) && !events.contains(&"415".to_owned()), "{events:?}");
    }
}
