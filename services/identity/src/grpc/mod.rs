//! The gRPC transport: thin handlers over [`Identity`].

pub mod convert;

use std::net::IpAddr;

use ticketing_platform::auth::{Principal, Role};
use ticketing_platform::peers::CLIENT_ADDRESS;
use ticketing_proto::identity::v1 as pb;
use ticketing_proto::identity::v1::identity_server::Identity as IdentityApi;
use tonic::{Request, Response, Status};

use crate::service::Identity;

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

    /// The client's address: the one a trusted edge names in [`CLIENT_ADDRESS`], else the
    /// peer's. Never `x-forwarded-for` or the header from anyone else: whoever calls
    /// identity directly could name any address, and share or dodge another's throttle.
    fn client_ip<T>(&self, request: &Request<T>) -> Option<String> {
        let from_edge = Principal::of(request).is_ok_and(|caller| self.identity.is_trusted_edge(&caller));
        from_edge
            .then(|| request.metadata().get(CLIENT_ADDRESS)?.to_str().ok()?.parse::<IpAddr>().ok())
            .flatten()
            .or_else(|| request.remote_addr().map(|a| a.ip()))
            .map(|ip| ip.to_string())
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
        let ip = self.client_ip(&request);
        let r = request.into_inner();
        let pair = self.identity.login(&r.email, &r.password, ip.as_deref()).await?;
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
        let r = request.into_inner();
        let role = convert::role_from_proto(r.role)?;
        Ok(Response::new(self.identity.set_role(caller.user_id, &r.user_id, role).await?.into()))
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
}
