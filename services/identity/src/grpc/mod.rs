//! The gRPC transport: thin handlers over [`Identity`].

pub mod audit;
pub mod convert;

use std::net::IpAddr;

use ticketing_platform::auth::{Principal, Role};
use ticketing_platform::peers::{CLIENT_ADDRESS, CLIENT_USER_AGENT};
use ticketing_proto::identity::v1 as pb;
use ticketing_proto::identity::v1::identity_server::Identity as IdentityApi;
use tonic::{Request, Response, Status};

use ticketing_platform::audit::printable_user_agent;

use crate::adapters::refresh::Origin;
use crate::service::{Identity, PasswordChanged};

/// Implements `ticketing.identity.v1.Identity`.
#[derive(Clone)]
pub struct Api {
    identity: Identity,
}

impl Api {
    /// The API over `identity`.
    pub fn new(identity: Identity) -> Self {
        Self { identity }
    }

    /// Where a login comes from. The client's address: the one a trusted edge names in
    /// [`CLIENT_ADDRESS`], else the
    /// peer's. Never `x-forwarded-for` or the header from anyone else: whoever calls
    /// identity directly could name any address, and share or dodge another's throttle.
    /// With the address, the user agent the trusted edge names (printable ASCII, cut short).
    fn origin<T>(&self, request: &Request<T>) -> Origin {
        let from_edge = Principal::of(request).is_ok_and(|caller| self.identity.is_trusted_edge(&caller));
        let edge_says = |key: &str| from_edge.then(|| request.metadata().get(key)?.to_str().ok()).flatten();
        let address = edge_says(CLIENT_ADDRESS)
            .and_then(|a| a.parse::<IpAddr>().ok())
            .or_else(|| request.remote_addr().map(|a| a.ip()))
            .map(|ip| ip.to_string());
        let user_agent = edge_says(CLIENT_USER_AGENT).and_then(printable_user_agent);
        Origin { address, user_agent }
    }
}

#[tonic::async_trait]
impl IdentityApi for Api {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = request.into_inner();
        self.identity.register(&r.email, &r.password, &r.display_name).await?;
        Ok(Response::new(pb::RegisterResponse {}))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::VerifyEmailResponse>, Status> {
        self.identity.verify_email(&request.into_inner().token).await?;
        Ok(Response::new(pb::VerifyEmailResponse {}))
    }

    async fn resend_verification_email(
        &self,
        request: Request<pb::ResendVerificationEmailRequest>,
    ) -> Result<Response<pb::ResendVerificationEmailResponse>, Status> {
        let caller = Principal::of(&request)?;
        self.identity.resend_verification(caller.user_id).await?;
        Ok(Response::new(pb::ResendVerificationEmailResponse {}))
    }

    async fn mark_email_verified(
        &self,
        request: Request<pb::MarkEmailVerifiedRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = Principal::with_role(&request, Role::Admin)?;
        let user = self.identity.mark_verified(caller.user_id, &request.into_inner().user_id).await?;
        Ok(Response::new(user.into()))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::TokenPair>, Status> {
        let origin = self.origin(&request);
        let r = request.into_inner();
        let pair = self.identity.login(&r.email, &r.password, &origin).await?;
        Ok(Response::new(pair.into()))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::TokenPair>, Status> {
        let pair = self.identity.refresh(&request.into_inner().refresh_token).await?;
        Ok(Response::new(pair.into()))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        self.identity.logout(&request.into_inner().refresh_token).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn get_me(&self, request: Request<pb::GetMeRequest>) -> Result<Response<pb::User>, Status> {
        let caller = Principal::of(&request)?;
        Ok(Response::new(self.identity.user(caller.user_id).await?.into()))
    }

    async fn update_me(&self, request: Request<pb::UpdateMeRequest>) -> Result<Response<pb::User>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        Ok(Response::new(self.identity.update_profile(caller.user_id, r.display_name.as_deref()).await?.into()))
    }

    async fn set_user_role(&self, request: Request<pb::SetUserRoleRequest>) -> Result<Response<pb::User>, Status> {
        let caller = Principal::with_role(&request, Role::Admin)?;
        let actor = ticketing_platform::audit::Actor::of(&caller, &request);
        let r = request.into_inner();
        let role = convert::role_from_proto(r.role)?;
        Ok(Response::new(self.identity.set_role(&actor, &r.user_id, role).await?.into()))
    }

    async fn get_jwks(&self, _request: Request<pb::GetJwksRequest>) -> Result<Response<pb::GetJwksResponse>, Status> {
        let jwks = self.identity.jwks().await?;
        let jwks_json = serde_json::to_string(&jwks).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::GetJwksResponse { jwks_json }))
    }

    async fn rotate_signing_keys(
        &self,
        request: Request<pb::RotateSigningKeysRequest>,
    ) -> Result<Response<pb::RotateSigningKeysResponse>, Status> {
        Principal::with_role(&request, Role::Admin)?;
        let active_kid = self.identity.rotate_keys().await?;
        Ok(Response::new(pb::RotateSigningKeysResponse { active_kid }))
    }

    async fn revoke_signing_key(
        &self,
        request: Request<pb::RevokeSigningKeyRequest>,
    ) -> Result<Response<pb::RevokeSigningKeyResponse>, Status> {
        let caller = Principal::with_role(&request, Role::Admin)?;
        let active_kid = self.identity.revoke_key(caller.user_id, &request.into_inner().kid).await?;
        Ok(Response::new(pb::RevokeSigningKeyResponse { active_kid }))
    }

    async fn issue_service_token(
        &self,
        request: Request<pb::IssueServiceTokenRequest>,
    ) -> Result<Response<pb::ServiceToken>, Status> {
        let r = request.into_inner();
        let (access_token, expires_at) = self.identity.service_token(&r.client_id, &r.client_secret).await?;
        let expires_at = prost_types::Timestamp { seconds: expires_at.timestamp(), nanos: 0 };
        Ok(Response::new(pb::ServiceToken { access_token, expires_at: Some(expires_at) }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        let changed = self.identity.change_password(&caller, &r.current_password, &r.new_password).await?;
        Ok(Response::new(match changed {
            PasswordChanged::SessionKept => pb::ChangePasswordResponse { session_kept: true, tokens: None },
            PasswordChanged::NewSession(pair) => {
                pb::ChangePasswordResponse { session_kept: false, tokens: Some(pair.into()) }
            }
        }))
    }

    async fn forgot_password(
        &self,
        request: Request<pb::ForgotPasswordRequest>,
    ) -> Result<Response<pb::ForgotPasswordResponse>, Status> {
        self.identity.forgot_password(&request.into_inner().email).await?;
        Ok(Response::new(pb::ForgotPasswordResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let r = request.into_inner();
        self.identity.reset_password(&r.token, &r.new_password).await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let sessions = self.identity.sessions(&caller).await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions.into_iter().map(|(s, current)| convert::session_to_proto(s, current)).collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let caller = Principal::of(&request)?;
        self.identity.end_session(&caller, &request.into_inner().id).await?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn delete_me(&self, request: Request<pb::DeleteMeRequest>) -> Result<Response<pb::DeleteMeResponse>, Status> {
        let caller = Principal::of(&request)?;
        self.identity.delete_account(&caller, &request.into_inner().password).await?;
        Ok(Response::new(pb::DeleteMeResponse {}))
    }

    async fn start_oidc_login(
        &self,
        request: Request<pb::StartOidcLoginRequest>,
    ) -> Result<Response<pb::StartOidcLoginResponse>, Status> {
        let authorization_url = self.identity.start_oidc_login(&request.into_inner().provider).await?;
        Ok(Response::new(pb::StartOidcLoginResponse { authorization_url }))
    }

    async fn finish_oidc_login(
        &self,
        request: Request<pb::FinishOidcLoginRequest>,
    ) -> Result<Response<pb::TokenPair>, Status> {
        let origin = self.origin(&request);
        let r = request.into_inner();
        let pair = self.identity.finish_oidc_login(&r.provider, &r.code, &r.state, &origin).await?;
        Ok(Response::new(pair.into()))
    }
}
