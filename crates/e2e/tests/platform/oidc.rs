//! Social login through the gateway (ADR 0045), against a certified OpenID provider
//! (npm's `oidc-provider`, started on loopback; scripts/infra.sh installs it).

use reqwest::{Method, StatusCode};
use ticketing_testkit::oidc::{Browser, start_provider, with_login_hint};

use crate::harness::{OIDC_REDIRECT_URI, Options, Platform};
use crate::http::Http;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_social_login_through_the_gateway_signs_in_and_refuses_replays() {
    let provider = start_provider(OIDC_REDIRECT_URI).await;
    let p = Platform::start(Options { oidc_provider: Some(provider.port()), ..Options::default() }).await;
    let http = Http::new(&p);
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let address = format!("social-{}@example.com", ticketing_testkit::unique());

    // start: a redirect to the provider, the URL in the body too.
    let started = no_redirects.get(format!("{}/v1/auth/oidc/test/start", http.base)).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::FOUND);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let body: serde_json::Value = started.json().await.unwrap();
    assert_eq!(body["authorization_url"], location.as_str());
    assert!(location.starts_with(&provider.issuer), "{location}");
    assert!(location.contains("code_challenge_method=S256"), "{location}");

    // The provider signs the user in and sends the browser back with a code and the state,
    // which the web client hands to the callback.
    let hinted = with_login_hint(&location, &format!("verified:{address}"));
    let (code, state) = Browser::new().sign_in(&hinted, OIDC_REDIRECT_URI).await;
    let callback = format!("/v1/auth/oidc/test/callback?code={code}&state={state}");
    let tokens = http.ok(Method::GET, &callback, None, None, None).await;
    assert_eq!(tokens["token_type"], "Bearer");
    let token = tokens["access_token"].as_str().unwrap();
    let me = http.ok(Method::GET, "/v1/me", Some(token), None, None).await;
    assert_eq!(me["email"], address.as_str());

    // The state works once: a replay is a 400 problem naming it.
    let (status, headers, problem) = http.call(Method::GET, &callback, None, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem["errors"][0]["field"], "state", "{problem}");

    // A tampered code: the provider refuses it, and so do we (401, never 500).
    let started = no_redirects.get(format!("{}/v1/auth/oidc/test/start", http.base)).send().await.unwrap();
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let (code, state) =
        Browser::new().sign_in(&with_login_hint(&location, "verified:x@example.com"), OIDC_REDIRECT_URI).await;
    let tampered = format!("/v1/auth/oidc/test/callback?code={code}x&state={state}");
    let (status, _, problem) = http.call(Method::GET, &tampered, None, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");

    // The provider's own refusal, and providers nobody configured.
    let denied = "/v1/auth/oidc/test/callback?error=access_denied&state=whatever";
    let (status, _, problem) = http.call(Method::GET, denied, None, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("access_denied"), "{problem}");
    let (status, _, _) = http.call(Method::GET, "/v1/auth/oidc/nope/start", None, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
