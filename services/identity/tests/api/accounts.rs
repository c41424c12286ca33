//! Registration, login, throttling and the profile.

use std::time::Duration;

use ticketing_proto::identity::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{PASSWORD, authed, email, spawn_app, spawn_with};

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

#[tokio::test]
async fn duplicate_email_is_refused_whatever_its_case() {
    let app = spawn_app().await;
    let address = email();
    app.register(&address).await;
    let again = pb::RegisterRequest {
        email: address.to_uppercase(),
        password: PASSWORD.into(),
        display_name: "Someone".into(),
    };
    let status = app.client.clone().register(again).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
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
async fn repeated_failures_delay_then_lock_the_account() {
    let app = spawn_with(|c| {
        c.identity.login.free_failures = 2;
        c.identity.login.lockout_failures = 4;
        c.identity.login.delay_base = Duration::from_millis(300);
    })
    .await;
    let address = email();
    app.register(&address).await;
    for _ in 0..3 {
        let status = app.login(&address, "wrong-passphrase-here").await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    // The third failure earned a delay: an immediate attempt is refused unchecked.
    let throttled = app.login(&address, PASSWORD).await.unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted, "{throttled:?}");
    let delay = throttled.get_details_retry_info().and_then(|r| r.retry_delay).expect("retry info");
    assert!(delay <= Duration::from_millis(300), "{delay:?}");

    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    let fourth = app.login(&address, "wrong-passphrase-here").await.unwrap_err();
    assert_eq!(fourth.code(), Code::Unauthenticated);
    // Locked now: even the right password is refused, for far longer than a delay.
    let locked = app.login(&address, PASSWORD).await.unwrap_err();
    assert_eq!(locked.code(), Code::ResourceExhausted);
    let wait = locked.get_details_retry_info().and_then(|r| r.retry_delay).unwrap();
    assert!(wait > Duration::from_secs(60), "{wait:?}");

    // Other accounts from the same address are unaffected.
    let other = email();
    app.register(&other).await;
    app.login(&other, PASSWORD).await.expect("other account logs in");
}

#[tokio::test]
async fn a_client_address_with_too_many_failures_is_locked_out() {
    let app = spawn_with(|c| {
        c.identity.login.lockout_failures = 50;
        c.identity.login.ip_lockout_failures = 50;
        c.identity.login.free_failures = 40;
    })
    .await;
    let address = email();
    app.register(&address).await;
    // Spraying many accounts from one address, as the gateway names it.
    for _ in 0..50 {
        let status = app.login_from("203.0.113.7", &email(), PASSWORD).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let blocked = app.login_from("203.0.113.7", &address, PASSWORD).await.unwrap_err();
    assert_eq!(blocked.code(), Code::ResourceExhausted);
    app.login(&address, PASSWORD).await.expect("the same account from another address logs in");
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

#[tokio::test]
async fn a_burst_of_parallel_guesses_gets_no_further_than_serial_ones() {
    let app = spawn_with(|c| {
        c.identity.login.free_failures = 2;
        c.identity.login.lockout_failures = 10;
        c.identity.login.delay_base = Duration::from_secs(60);
    })
    .await;
    let address = email();
    app.register(&address).await;
    let attempts = (0..20).map(|i| app.login(&address, if i == 19 { PASSWORD } else { "wrong-passphrase-here" }));
    let results = futures::future::join_all(attempts).await;
    let checked = results.iter().filter(|r| !matches!(r, Err(s) if s.code() == Code::ResourceExhausted)).count();
    // Two free attempts, then the third earns a delay before its password is even checked.
    assert!(checked <= 3, "{checked} passwords were checked: {results:?}");
}
