//! Role changes: admin only, effective in the next token, never leaving zero admins.

use ticketing_platform::auth::Role;
use ticketing_proto::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{authed, spawn_app};

fn set_role(user_id: &str, role: pb::Role, token: &str) -> tonic::Request<pb::SetUserRoleRequest> {
    authed(pb::SetUserRoleRequest { user_id: user_id.into(), role: role.into() }, token)
}

#[tokio::test]
async fn only_admins_change_roles() {
    let app = spawn_app().await;
    let (user, user_tokens) = app.user_session().await;
    let (other, _) = app.user_session().await;

    let denied =
        app.client.clone().set_user_role(set_role(&other.id, pb::Role::Admin, &user_tokens.access_token)).await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let anonymous = app
        .client
        .clone()
        .set_user_role(pb::SetUserRoleRequest { user_id: user.id.clone(), role: pb::Role::Admin.into() })
        .await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);

    let admin = app.admin_session().await;
    let promoted = app
        .client
        .clone()
        .set_user_role(set_role(&user.id, pb::Role::Organizer, &admin.access_token))
        .await
        .expect("admin promotes")
        .into_inner();
    assert_eq!(promoted.role, pb::Role::Organizer as i32);

    // The old token still says `user`; the next one says `organizer`.
    let refreshed = app
        .client
        .clone()
        .refresh(pb::RefreshRequest { refresh_token: user_tokens.refresh_token })
        .await
        .unwrap()
        .into_inner();
    let mut auth = app.config.auth.clone();
    auth.jwks_url = format!("{}/.well-known/jwks.json", app.service.admin_url());
    let principal =
        ticketing_platform::auth::Verifier::from_config(&auth).verify(&refreshed.access_token).await.unwrap();
    assert_eq!(principal.roles, vec![Role::Organizer]);
}

#[tokio::test]
async fn bad_role_requests_are_refused_cleanly() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let (user, _) = app.user_session().await;
    let cases = [
        (set_role("not-a-uuid", pb::Role::Organizer, &admin.access_token), Code::InvalidArgument),
        (set_role(&user.id, pb::Role::Unspecified, &admin.access_token), Code::InvalidArgument),
        (set_role(&uuid::Uuid::new_v4().to_string(), pb::Role::Organizer, &admin.access_token), Code::NotFound),
    ];
    for (request, code) in cases {
        assert_eq!(app.client.clone().set_user_role(request).await.unwrap_err().code(), code);
    }
    let mut unknown = set_role(&user.id, pb::Role::Organizer, &admin.access_token);
    unknown.get_mut().role = 42;
    assert_eq!(app.client.clone().set_user_role(unknown).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let app = spawn_app().await;
    let admin = app.admin_session().await;
    let me = app.me(&admin.access_token).await.unwrap();
    let status = app.client.clone().set_user_role(set_role(&me.id, pb::Role::User, &admin.access_token)).await;
    assert_eq!(status.unwrap_err().code(), Code::FailedPrecondition);

    // With a second admin, the first may step down.
    let (user, _) = app.user_session().await;
    app.client.clone().set_user_role(set_role(&user.id, pb::Role::Admin, &admin.access_token)).await.unwrap();
    let demoted =
        app.client.clone().set_user_role(set_role(&me.id, pb::Role::User, &admin.access_token)).await.unwrap();
    assert_eq!(demoted.into_inner().role, pb::Role::User as i32);
}

/// Whoever registered the configured admin email first does not hold the configured
/// password: starting identity must not make them an admin.
#[tokio::test]
async fn the_bootstrap_admin_is_only_ever_created_never_an_existing_account_promoted() {
    let app = spawn_app().await;
    let squatter = crate::helpers::email();
    let registered = app.register(&squatter).await;

    let mut config = app.config.clone();
    config.server = ticketing_testkit::server_config();
    config.identity.bootstrap_admin_email = squatter.clone();
    config.identity.bootstrap_admin_password = "the-configured-admin-passphrase".into();
    let restarted = ticketing_testkit::Spawned::start(ticketing_identity::startup::build(config).await.unwrap());
    let client = pb::identity_client::IdentityClient::new(restarted.channel().await);

    let login = |password: &str| pb::LoginRequest { email: squatter.clone(), password: password.into() };
    let refused = client.clone().login(login("the-configured-admin-passphrase")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "the configured password is not theirs");
    let tokens = client.clone().login(login(crate::helpers::PASSWORD)).await.unwrap().into_inner();
    let me = app.me(&tokens.access_token).await.unwrap();
    assert_eq!((me.id, me.role), (registered.id, pb::Role::User as i32), "still a user");
}
