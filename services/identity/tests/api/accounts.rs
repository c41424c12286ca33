//! Registration, login and the profile.

use prost::{Message as _, Name as _};
use ticketing_proto::events::v1::{Envelope, RegistrationAttempted};
use ticketing_proto::identity::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{PASSWORD, authed, email, spawn_app, spawn_unpublished};

#[tokio::test]
async fn register_then_login_and_read_me() {
    let app = spawn_app().await;
    let raw = format!("  Mixed.Case-{}@Example.COM ", ticketing_testkit::unique());
    let user = app.register(&raw).await;
    assert_eq!(user.email, raw.trim().to_lowercase());
    assert_eq!(user.role, pb::Role::User as i32);
    assert!(!user.display_name.is_empty(), "display name defaults to the email's local part");

    let tokens = app.login(&raw.to_uppercase(), PASSWORD).await.expect("login is case-insensitive");
    assert_eq!(tokens.token_type, "Bearer");
    assert!(!tokens.refresh_token.is_empty());
    let me = app.me(&tokens.access_token).await.expect("me");
    assert_eq!(me.id, user.id);
}

/// Registering a taken email, in any case, is answered exactly as a new one: nothing tells
/// a caller which addresses have accounts. No second account is made, the first keeps its
/// password, and its owner gets a `RegistrationAttempted` (an email) instead.
#[tokio::test]
async fn a_taken_email_is_answered_as_a_new_one_and_its_owner_is_told() {
    // Every event stays in the outbox, where the transaction that answered the caller put
    // it, for the test to read without racing a relay.
    let app = spawn_unpublished().await;
    let address = email();
    let register = |email: String, password: &str| pb::RegisterRequest {
        email,
        password: password.into(),
        display_name: "Someone".into(),
    };
    let first = app.client.clone().register(register(address.clone(), PASSWORD)).await.expect("new");
    let owner = app.me(&app.login(&address, PASSWORD).await.unwrap().access_token).await.unwrap();
    let again = register(address.to_uppercase(), "another-long-passphrase");
    let second = app.client.clone().register(again).await.expect("a taken email is not refused");
    assert_eq!(first.into_inner(), second.into_inner(), "the same answer");

    app.login(&address, PASSWORD).await.expect("the owner's password still opens the account");
    let refused = app.login(&address, "another-long-passphrase").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "no second account, no new password");

    let envelopes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = $1 ORDER BY seq")
        .bind(RegistrationAttempted::full_name())
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    let attempts: Vec<RegistrationAttempted> = envelopes
        .iter()
        .map(|e| ticketing_platform::events::payload(&Envelope::decode(&e[..]).unwrap()).unwrap())
        .collect();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!((&*attempts[0].user_id, &*attempts[0].email), (&*owner.id, &*owner.email), "told to the owner");
}

#[tokio::test]
async fn invalid_registrations_list_every_bad_field() {
    let app = spawn_app().await;
    let request =
        pb::RegisterRequest { email: "not-an-email".into(), password: "short".into(), display_name: String::new() };
    let status = app.client.clone().register(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .expect("field details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert!(fields.contains(&"email".to_owned()), "{fields:?}");
    assert!(fields.contains(&"password".to_owned()), "{fields:?}");

    let weak = pb::RegisterRequest { email: email(), password: "password123".into(), display_name: String::new() };
    let status = app.client.clone().register(weak).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert!(violations.iter().all(|v| v.field == "password"), "{violations:?}");
    assert!(violations.iter().any(|v| v.description.contains("at least 12")), "{violations:?}");
}

#[tokio::test]
async fn unknown_user_and_wrong_password_are_indistinguishable() {
    let app = spawn_app().await;
    let address = email();
    app.register(&address).await;
    let wrong = app.login(&address, "not-the-right-passphrase").await.unwrap_err();
    let unknown = app.login(&email(), PASSWORD).await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!(unknown.code(), wrong.code());
    assert_eq!(unknown.message(), wrong.message());
}

#[tokio::test]
async fn profile_updates_are_validated() {
    let app = spawn_app().await;
    let (user, tokens) = app.user_session().await;
    let updated = app
        .client
        .clone()
        .update_me(authed(pb::UpdateMeRequest { display_name: Some("  Taylor  ".into()) }, &tokens.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.id, user.id);
    assert_eq!(updated.display_name, "Taylor");
    let status = app
        .client
        .clone()
        .update_me(authed(pb::UpdateMeRequest { display_name: Some("x".repeat(101)) }, &tokens.access_token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let anonymous = app.client.clone().get_me(pb::GetMeRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}
