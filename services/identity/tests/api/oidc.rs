//! Social login (ADR 0045) against a certified OpenID provider, npm's `oidc-provider`,
//! started on loopback (scripts/oidc-provider/provider.js, installed by scripts/infra.sh).

use ticketing_identity::config::{Config, OidcProvider};
use ticketing_proto::events::v1::UserRegistered;
use ticketing_proto::identity::v1 as pb;
use ticketing_testkit::oidc::{Browser, CLIENT_ID, CLIENT_SECRET, Provider, start_provider, with_login_hint};
use tonic::Code;

use crate::helpers::{TestApp, authed, email, outbox, spawn_unpublished_with, spawn_with};

const PROVIDER: &str = "test";
/// Registered with the provider; the test reads the code off the redirect instead.
const REDIRECT_URI: &str = "http://127.0.0.1:9/v1/auth/oidc/test/callback";

fn provider_config(issuer: &str) -> OidcProvider {
    OidcProvider {
        issuer: issuer.to_owned(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: REDIRECT_URI.into(),
        ..OidcProvider::default()
    }
}

/// Identity with the provider configured as `test`.
async fn spawn(provider: &Provider) -> TestApp {
    let issuer = provider.issuer.clone();
    spawn_with(move |c: &mut Config| {
        c.identity.oidc.providers.insert(PROVIDER.into(), provider_config(&issuer));
    })
    .await
}

/// [`spawn`], keeping every event in the outbox for the test to read.
async fn spawn_unpublished(provider: &Provider) -> TestApp {
    let issuer = provider.issuer.clone();
    spawn_unpublished_with(move |c: &mut Config| {
        c.identity.oidc.providers.insert(PROVIDER.into(), provider_config(&issuer));
    })
    .await
}

/// The authorization URL of a new sign-in, with a `login_hint` naming who the provider
/// signs in (`verified:<email>` or `unverified:<email>`).
async fn start(app: &TestApp, hint: &str) -> String {
    let request = pb::StartOidcLoginRequest { provider: PROVIDER.into() };
    let url = app.client.clone().start_oidc_login(request).await.expect("start").into_inner().authorization_url;
    with_login_hint(&url, hint)
}

async fn finish(app: &TestApp, code: &str, state: &str) -> Result<pb::TokenPair, tonic::Status> {
    let request = pb::FinishOidcLoginRequest { provider: PROVIDER.into(), code: code.into(), state: state.into() };
    app.client.clone().finish_oidc_login(request).await.map(tonic::Response::into_inner)
}

/// A whole sign-in as `hint`.
async fn sign_in(app: &TestApp, hint: &str) -> Result<pb::TokenPair, tonic::Status> {
    let (code, state) = Browser::new().sign_in(&start(app, hint).await, REDIRECT_URI).await;
    finish(app, &code, &state).await
}

#[tokio::test]
async fn a_social_login_creates_an_account_and_signs_in_to_it_again() {
    let provider = start_provider(REDIRECT_URI).await;
    let app = spawn_unpublished(&provider).await;
    let address = email();

    let tokens = sign_in(&app, &format!("verified:{address}")).await.expect("a first social login");
    let me = app.me(&tokens.access_token).await.expect("our access token works");
    assert_eq!(me.email, address);
    assert!(me.email_verified, "the provider vouched for the address");
    let refreshed = app.refresh(&tokens.refresh_token).await.expect("our refresh token works");
    assert_eq!(app.me(&refreshed.access_token).await.unwrap().id, me.id);

    let again = sign_in(&app, &format!("verified:{address}")).await.expect("a second social login");
    assert_eq!(app.me(&again.access_token).await.unwrap().id, me.id, "the link finds the same user");

    // Announced like a registration (welcome emails, notification's projection), once: in
    // the outbox beside the bootstrap admin's, written with the account.
    let registered: Vec<UserRegistered> = outbox(&app).await;
    let mine: Vec<_> = registered.iter().filter(|e| e.user_id == me.id).collect();
    assert!(mine.len() == 1 && mine[0].email == address, "{registered:?}");
    // No password: a password login with any password fails as for an unknown account.
    let refused = app.login(&address, "").await.expect_err("no password login");
    assert_eq!(refused.code(), Code::Unauthenticated);
    // Both sign-ins are sessions of the account.
    let request = authed(pb::ListSessionsRequest {}, &again.access_token);
    let sessions = app.client.clone().list_sessions(request).await.unwrap().into_inner().sessions;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
}

#[tokio::test]
async fn a_social_login_links_to_an_existing_account_only_through_verified_emails() {
    let provider = start_provider(REDIRECT_URI).await;
    let app = spawn(&provider).await;
    let address = email();
    let account = app.register(&address).await;
    assert!(!account.email_verified);

    // Our account never proved the address: whoever registered it may not own it.
    let refused = sign_in(&app, &format!("verified:{address}")).await.expect_err("an unverified account");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    let admin = app.admin_session().await;
    let request = authed(pb::MarkEmailVerifiedRequest { user_id: account.id.clone() }, &admin.access_token);
    app.client.clone().mark_email_verified(request).await.unwrap();
    // The provider does not vouch for the address: no link either.
    let refused = sign_in(&app, &format!("unverified:{address}")).await.expect_err("an unverified provider email");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    let tokens = sign_in(&app, &format!("verified:{address}")).await.expect("both verified: linked");
    assert_eq!(app.me(&tokens.access_token).await.unwrap().id, account.id);
    // The password still works too.
    app.login(&address, crate::helpers::PASSWORD).await.expect("the password login still works");

    // An address the provider does not vouch for makes an account that must verify it.
    let other = email();
    let tokens = sign_in(&app, &format!("unverified:{other}")).await.expect("a new, unverified account");
    let me = app.me(&tokens.access_token).await.unwrap();
    assert_eq!((me.email.as_str(), me.email_verified), (other.as_str(), false));
}

#[tokio::test]
async fn reused_states_tampered_codes_and_unknown_providers_are_refused() {
    let provider = start_provider(REDIRECT_URI).await;
    let app = spawn(&provider).await;
    let hint = format!("verified:{}", email());

    let (code, state) = Browser::new().sign_in(&start(&app, &hint).await, REDIRECT_URI).await;
    finish(&app, &code, &state).await.expect("the first use");
    let reused = finish(&app, &code, &state).await.expect_err("a reused state");
    assert_eq!(reused.code(), Code::InvalidArgument, "{reused:?}");

    let (code, state) = Browser::new().sign_in(&start(&app, &hint).await, REDIRECT_URI).await;
    let tampered = finish(&app, &format!("{code}x"), &state).await.expect_err("a tampered code");
    assert_eq!(tampered.code(), Code::Unauthenticated, "{tampered:?}");
    // The state went with it: the real code cannot follow.
    let after = finish(&app, &code, &state).await.expect_err("the state is used up");
    assert_eq!(after.code(), Code::InvalidArgument);

    let made_up = finish(&app, "code", "made-up-state").await.expect_err("a made-up state");
    assert_eq!(made_up.code(), Code::InvalidArgument);
    let request = pb::StartOidcLoginRequest { provider: "nope".into() };
    let unknown = app.client.clone().start_oidc_login(request).await.expect_err("an unknown provider");
    assert_eq!(unknown.code(), Code::NotFound);
    let request = pb::FinishOidcLoginRequest { provider: "nope".into(), code: code.clone(), state: state.clone() };
    let unknown = app.client.clone().finish_oidc_login(request).await.expect_err("an unknown provider");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_is_a_provider_failure() {
    let app = spawn_with(|c: &mut Config| {
        c.identity.oidc.providers.insert(PROVIDER.into(), provider_config("http://127.0.0.1:9"));
    })
    .await;
    let request = pb::StartOidcLoginRequest { provider: PROVIDER.into() };
    let failed = app.client.clone().start_oidc_login(request).await.expect_err("no provider there");
    assert_eq!(failed.code(), Code::Unavailable, "{failed:?}");
    assert_eq!(
        ticketing_platform::status::refusal_reason(&failed).as_deref(),
        Some(ticketing_platform::status::OIDC_PROVIDER_FAILED)
    );
}
