//! Account self-service (issue 19): changing and resetting a password, listing and ending
//! sessions, and deleting the account.

use std::time::Duration;

use ticketing_proto::events::v1::{PasswordChanged, PasswordResetRequested, UserDeleted};
use ticketing_proto::identity::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{
    ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestApp, authed, outbox, spawn_app, spawn_unpublished, spawn_with,
};

const NEW_PASSWORD: &str = "a-brand-new-passphrase";
const WRONG: &str = "not-the-right-passphrase";

async fn change(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> Result<pb::ChangePasswordResponse, tonic::Status> {
    let request = pb::ChangePasswordRequest { current_password: current.into(), new_password: new.into() };
    app.client.clone().change_password(authed(request, token)).await.map(tonic::Response::into_inner)
}

async fn forgot(app: &TestApp, address: &str) {
    let request = pb::ForgotPasswordRequest { email: address.into() };
    app.client.clone().forgot_password(request).await.expect("forgot answers alike for every address");
}

async fn reset(app: &TestApp, token: &str, new: &str) -> Result<(), tonic::Status> {
    let request = pb::ResetPasswordRequest { token: token.into(), new_password: new.into() };
    app.client.clone().reset_password(request).await.map(|_| ())
}

async fn sessions(app: &TestApp, token: &str) -> Vec<pb::Session> {
    let list = app.client.clone().list_sessions(authed(pb::ListSessionsRequest {}, token)).await.expect("sessions");
    list.into_inner().sessions
}

async fn revoke(app: &TestApp, token: &str, id: &str) -> Result<(), tonic::Status> {
    let request = authed(pb::RevokeSessionRequest { id: id.into() }, token);
    app.client.clone().revoke_session(request).await.map(|_| ())
}

async fn delete(app: &TestApp, token: &str, password: &str) -> Result<(), tonic::Status> {
    let request = authed(pb::DeleteMeRequest { password: password.into() }, token);
    app.client.clone().delete_me(request).await.map(|_| ())
}

/// The reset tokens mailed to `address` so far, oldest first.
async fn reset_tokens(app: &TestApp, address: &str) -> Vec<String> {
    let requested = outbox::<PasswordResetRequested>(app).await;
    requested.into_iter().filter(|r| r.email == address).map(|r| r.token).collect()
}

fn assert_field(status: &tonic::Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields = status.get_details_bad_request().expect("field details").field_violations;
    assert!(fields.iter().any(|f| f.field == field), "{field} in {fields:?}");
}

/// The caller's own session goes on, the others end; the old password opens nothing; a
/// wrong current password or a weak new one changes nothing.
#[tokio::test]
async fn changing_the_password_keeps_the_callers_session_and_ends_the_others() {
    let app = spawn_app().await;
    let (user, mine) = app.user_session().await;
    let other = app.login(&user.email, PASSWORD).await.unwrap();

    let refused = change(&app, &mine.access_token, WRONG, NEW_PASSWORD).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "a wrong current password: {refused:?}");
    let weak = change(&app, &mine.access_token, PASSWORD, "short").await.unwrap_err();
    assert_field(&weak, "new_password");
    app.login(&user.email, PASSWORD).await.expect("nothing changed yet");

    let changed = change(&app, &mine.access_token, PASSWORD, NEW_PASSWORD).await.unwrap();
    assert!(changed.session_kept && changed.tokens.is_none(), "{changed:?}");
    app.refresh(&mine.refresh_token).await.expect("the caller's session goes on");
    assert_eq!(app.refresh(&other.refresh_token).await.unwrap_err().code(), Code::Unauthenticated, "the other ended");
    assert_eq!(app.login(&user.email, PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    app.login(&user.email, NEW_PASSWORD).await.expect("the new password works");
}

/// An access token without a session (minted before tokens named theirs) cannot tell which
/// session to keep: every one ends and the answer is a new sign-in.
#[tokio::test]
async fn without_a_named_session_every_session_ends_and_a_new_pair_is_returned() {
    let app = spawn_app().await;
    let (user, session) = app.user_session().await;
    let claims = ticketing_platform::auth::Claims {
        email_verified: Some(false),
        ..ticketing_platform::auth::Claims::issue(
            user.id.clone(),
            vec![ticketing_platform::auth::Role::User],
            &app.config.auth,
            chrono::Utc::now().timestamp(),
            Duration::from_secs(300),
        )
    };
    let sealer = ticketing_platform::sealing::Sealer::new(&app.config.sealing).unwrap();
    let keys = ticketing_identity::adapters::keys::KeyRing::open(app.db.pool.clone(), sealer, Duration::from_secs(300))
        .await
        .unwrap();
    let unnamed = keys.sign(&claims).await.unwrap();
    let changed = change(&app, &unnamed, PASSWORD, NEW_PASSWORD).await.unwrap();
    assert!(!changed.session_kept);
    let fresh = changed.tokens.expect("a new pair");
    assert_eq!(app.refresh(&session.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    app.refresh(&fresh.refresh_token).await.expect("the new session works");
}

/// Wrong passwords on a signed-in account's changes are guesses like failed logins: they
/// are slowed the same way, and count on the account.
#[tokio::test]
async fn a_wrong_current_password_is_throttled_like_a_login() {
    let app = spawn_with(|c| {
        c.identity.login.free_failures = 2;
        c.identity.login.delay_base = Duration::from_secs(30);
        c.identity.login.max_delay = Duration::from_secs(60);
    })
    .await;
    let (_, session) = app.user_session().await;
    for _ in 0..3 {
        let refused = delete(&app, &session.access_token, WRONG).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }
    let throttled = change(&app, &session.access_token, PASSWORD, NEW_PASSWORD).await.unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted, "even the right password waits: {throttled:?}");
    assert!(throttled.get_details_retry_info().and_then(|r| r.retry_delay).is_some());
}

/// Forgetting answers alike for every address; the link mailed to an account's address
/// works once, sets the password and ends every session; a newer link or a password change
/// voids the older one, and an expired one resets nothing.
#[tokio::test]
async fn a_mailed_reset_link_sets_the_password_once_and_ends_every_session() {
    let app = spawn_unpublished().await;
    let (user, session) = app.user_session().await;
    forgot(&app, "nobody-has-this@example.com").await;
    forgot(&app, &user.email.to_uppercase()).await;
    forgot(&app, &user.email).await;
    let tokens = reset_tokens(&app, &user.email).await;
    assert_eq!(tokens.len(), 2, "only the account's address gets mail");
    assert_eq!(outbox::<PasswordResetRequested>(&app).await.len(), 2, "the unknown address got none");

    assert_field(&reset(&app, &tokens[0], NEW_PASSWORD).await.unwrap_err(), "token");
    assert_field(&reset(&app, &tokens[1], "short").await.unwrap_err(), "new_password");
    reset(&app, &tokens[1], NEW_PASSWORD).await.expect("a weak password did not use the link up");
    assert_field(&reset(&app, &tokens[1], "yet-another-passphrase").await.unwrap_err(), "token");
    let told = |changes: Vec<PasswordChanged>| -> Vec<(String, bool)> {
        changes.into_iter().map(|c| (c.email, c.by_reset)).collect()
    };
    let reset_once = [(user.email.clone(), true)];
    assert_eq!(told(outbox(&app).await), reset_once, "the owner is told of the reset, not of refused tries");
    assert_eq!(app.refresh(&session.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(app.login(&user.email, PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    let session = app.login(&user.email, NEW_PASSWORD).await.expect("the new password works");

    forgot(&app, &user.email).await;
    sqlx::query("UPDATE password_resets SET expires_at = now() - interval '1 second'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let expired = reset_tokens(&app, &user.email).await.pop().unwrap();
    assert_field(&reset(&app, &expired, PASSWORD).await.unwrap_err(), "token");

    forgot(&app, &user.email).await;
    let pending = reset_tokens(&app, &user.email).await.pop().unwrap();
    change(&app, &session.access_token, NEW_PASSWORD, PASSWORD).await.unwrap();
    let then_changed = [reset_once[0].clone(), (user.email.clone(), false)];
    assert_eq!(told(outbox(&app).await), then_changed, "and of the change made signed in");
    assert_field(&reset(&app, &pending, NEW_PASSWORD).await.unwrap_err(), "token");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM password_resets").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(left, 0, "nothing left that resets a password");
    assert_field(&reset(&app, "not-a-token", NEW_PASSWORD).await.unwrap_err(), "token");
}

/// A user sees their sign-ins, the current one marked, and ends any of them; another
/// user's session id is as unknown as a made-up one.
#[tokio::test]
async fn a_user_lists_and_ends_their_own_sessions_only() {
    let app = spawn_app().await;
    let (user, mine) = app.user_session().await;
    let token = app.service_token("gateway").await;
    let mut login = authed(pb::LoginRequest { email: user.email.clone(), password: PASSWORD.into() }, &token);
    login.metadata_mut().insert(ticketing_platform::peers::CLIENT_ADDRESS, "203.0.113.9".parse().unwrap());
    login.metadata_mut().insert(ticketing_platform::peers::CLIENT_USER_AGENT, "Fan\tPhone/1.0".parse().unwrap());
    let phone = app.client.clone().login(login).await.unwrap().into_inner();

    let listed = sessions(&app, &mine.access_token).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let current: Vec<_> = listed.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1, "{listed:?}");
    let other = listed.iter().find(|s| !s.current).unwrap();
    assert_eq!((other.client_address.as_str(), other.user_agent.as_str()), ("203.0.113.9", "FanPhone/1.0"));
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().expect("an instant").seconds;
    assert!(seconds(&other.last_used_at) >= seconds(&other.created_at));

    let (_, stranger) = app.user_session().await;
    let refused = revoke(&app, &stranger.access_token, &other.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "another user's session");
    assert_eq!(revoke(&app, &mine.access_token, "not-a-session").await.unwrap_err().code(), Code::NotFound);
    app.refresh(&phone.refresh_token).await.expect("the stranger ended nothing");

    revoke(&app, &mine.access_token, &other.id).await.expect("my own");
    assert_eq!(app.refresh(&phone.refresh_token).await.unwrap_err().code(), Code::Unauthenticated, "ended");
    let left = sessions(&app, &mine.access_token).await;
    assert_eq!(left.len(), 1);
    assert!(left[0].current);
    assert_eq!(revoke(&app, &mine.access_token, &other.id).await.unwrap_err().code(), Code::NotFound, "ended already");
}

/// Deleting an account takes its password; afterwards identity holds nothing personal
/// about it, its sessions are gone, the address may register again, and `UserDeleted`
/// tells the other services.
#[tokio::test]
async fn deleting_an_account_erases_it_and_frees_its_address() {
    let app = spawn_unpublished().await;
    let (user, session) = app.user_session().await;
    forgot(&app, &user.email).await;
    assert_eq!(delete(&app, &session.access_token, WRONG).await.unwrap_err().code(), Code::PermissionDenied);
    app.me(&session.access_token).await.expect("still there");

    delete(&app, &session.access_token, PASSWORD).await.expect("deleted");
    assert_eq!(app.me(&session.access_token).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(app.refresh(&session.refresh_token).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(app.login(&user.email, PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    let row: (String, String, Option<String>, String) =
        sqlx::query_as("SELECT email, display_name, password_hash, role FROM users WHERE id = $1::uuid")
            .bind(&user.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(row, (format!("deleted:{}", user.id), String::new(), None, "user".to_owned()));
    let tokens: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM password_resets) + (SELECT count(*) FROM email_verifications WHERE user_id = $1::uuid)",
    )
    .bind(&user.id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(tokens, 0, "no mailed token outlives the account");
    let deleted: Vec<String> = outbox::<UserDeleted>(&app).await.into_iter().map(|d| d.user_id).collect();
    assert_eq!(deleted, vec![user.id.clone()]);

    let again = app.register(&user.email).await;
    assert_ne!(again.id, user.id, "a new account, not the old one back");
    assert_eq!(delete(&app, &session.access_token, PASSWORD).await.unwrap_err().code(), Code::NotFound);
}

/// The platform keeps an admin: the last one cannot delete their account.
#[tokio::test]
async fn the_last_admin_cannot_delete_their_account() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let refused = delete(&app, &admin.access_token, ADMIN_PASSWORD).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.expect("still there");
}
