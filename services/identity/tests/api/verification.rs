//! Email verification (issue 16, finding 5): a single-use, expiring link by email, the
//! `email_verified` claim it sets, and the admin's way around it for accounts without an
//! inbox.

use base64::Engine as _;
use ticketing_proto::events::v1::EmailVerificationRequested;
use ticketing_proto::identity::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{PASSWORD, TestApp, authed, email, outbox, spawn_app, spawn_unpublished, spawn_with};

/// The tokens mailed to `address` so far, oldest first, as the outbox holds them.
async fn tokens_to(app: &TestApp, address: &str) -> Vec<String> {
    let requested = outbox::<EmailVerificationRequested>(app).await;
    requested.into_iter().filter(|v| v.email == address).map(|v| v.token).collect()
}

/// The `email_verified` claim of a fresh login's access token.
async fn claim(app: &TestApp, address: &str) -> serde_json::Value {
    let token = app.login(address, PASSWORD).await.expect("login").access_token;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["email_verified"].clone()
}

async fn verify(app: &TestApp, token: &str) -> Result<(), tonic::Status> {
    app.client.clone().verify_email(pb::VerifyEmailRequest { token: token.into() }).await.map(|_| ())
}

fn assert_refused(result: Result<(), tonic::Status>, why: &str) {
    let status = result.expect_err(why);
    assert_eq!(status.code(), Code::InvalidArgument, "{why}: {status:?}");
    let fields = status.get_details_bad_request().expect("field details").field_violations;
    assert_eq!(fields[0].field, "token", "{why}");
}

/// A new account's tokens say `email_verified: false` until the mailed link is used; the
/// link works once; a resent link replaces the earlier one; an expired link verifies
/// nobody.
#[tokio::test]
async fn a_mailed_link_verifies_once_and_sets_the_claim_from_the_next_login() {
    let app = spawn_unpublished().await;
    let address = email();
    let user = app.register(&address).await;
    assert!(!user.email_verified);
    assert_eq!(claim(&app, &address).await, false);

    // A resend replaces the first link, which then verifies nobody.
    let session = app.login(&address, PASSWORD).await.unwrap().access_token;
    let resend = authed(pb::ResendVerificationEmailRequest {}, &session);
    app.client.clone().resend_verification_email(resend).await.expect("resend");
    let tokens = tokens_to(&app, &address).await;
    assert_eq!(tokens.len(), 2, "one at registration, one resent");
    assert_refused(verify(&app, &tokens[0]).await, "a replaced link");

    // An expired link verifies nobody either.
    sqlx::query("UPDATE email_verifications SET expires_at = now() - interval '1 second'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_refused(verify(&app, &tokens[1]).await, "an expired link");
    assert_eq!(claim(&app, &address).await, false);

    let resend = authed(pb::ResendVerificationEmailRequest {}, &session);
    app.client.clone().resend_verification_email(resend).await.expect("resend");
    let tokens = tokens_to(&app, &address).await;
    assert_eq!(tokens.len(), 3);
    verify(&app, &tokens[2]).await.expect("a fresh link verifies");
    assert_refused(verify(&app, &tokens[2]).await, "a used link");
    assert_eq!(claim(&app, &address).await, true);
    assert!(app.me(&session).await.unwrap().email_verified);
    assert_refused(verify(&app, "not-a-token").await, "a made-up token");

    // Nothing left to verify: a resend sends nothing.
    let resend = authed(pb::ResendVerificationEmailRequest {}, &session);
    app.client.clone().resend_verification_email(resend).await.expect("resend");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM email_verifications").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(left, 0);
}

/// Admins verify accounts that have no inbox (demo seeds, load tests); nobody else can.
#[tokio::test]
async fn only_an_admin_marks_an_email_verified() {
    let app = spawn_app().await;
    let (user, tokens) = app.user_session().await;
    let mark = || pb::MarkEmailVerifiedRequest { user_id: user.id.clone() };
    let refused = app.client.clone().mark_email_verified(authed(mark(), &tokens.access_token)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let admin = app.admin_session().await.access_token;
    let marked = app.client.clone().mark_email_verified(authed(mark(), &admin)).await.unwrap().into_inner();
    assert!(marked.email_verified);
    assert_eq!(claim(&app, &user.email).await, true);
    assert!(app.me(&admin).await.unwrap().email_verified, "the bootstrap admin is made verified");
}

/// With verification off (no email on the platform), accounts are made verified.
#[tokio::test]
async fn without_required_verification_accounts_are_made_verified() {
    let app = spawn_with(|c| c.identity.require_email_verification = false).await;
    let address = email();
    assert!(app.register(&address).await.email_verified);
    assert_eq!(claim(&app, &address).await, true);
}
