//! Identity's use cases.

pub mod audit;

use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, Opts};
use serde_json::json;
use sqlx::PgPool;
use ticketing_platform::audit::{Actor, Target};
use ticketing_platform::auth::AuthConfig;
use ticketing_platform::auth::{Claims, Principal, Role, Scope};
use ticketing_platform::kafka::outbox;

use crate::adapters::hasher::Hasher;
use crate::adapters::keys::KeyRing;
use crate::adapters::oidc::{PendingLogins, ProviderAccount, Providers};
use crate::adapters::refresh::{Origin, RefreshTokens, Rotation, Session};
use crate::adapters::throttle::LoginThrottle;
use crate::adapters::verifications::Purpose;
use crate::adapters::{users, verifications};
use crate::config::IdentitySettings;
use crate::domain::email::Email;
use crate::domain::user::{User, display_name};
use crate::domain::{FieldViolation, IdentityError, password};
use crate::events::publish;

/// The session (`sid`) an access token was issued for. The token was verified by the
/// transport's auth layer, so its payload is read without checking it again.
fn session_of(token: &str) -> Option<String> {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Sid {
        sid: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Sid>(&json).ok()?.sid
}

/// An access token and a refresh token.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// Signed JWT.
    pub access_token: String,
    /// When it expires.
    pub access_expires_at: DateTime<Utc>,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// When the refresh token's family expires.
    pub refresh_expires_at: DateTime<Utc>,
}

/// The identity service's state and use cases.
#[derive(Clone)]
pub struct Identity {
    pub(crate) pool: PgPool,
    pub(crate) keys: KeyRing,
    refresh: RefreshTokens,
    throttle: LoginThrottle,
    hasher: Hasher,
    oidc: Providers,
    pending: PendingLogins,
    settings: IdentitySettings,
    auth: AuthConfig,
    topic: String,
    audit_topic: String,
    logins: IntCounterVec,
    /// Subjects of `identity.trusted_edge_clients`' service tokens.
    edges: Vec<uuid::Uuid>,
}

/// What [`Identity::new`] needs.
pub struct Parts {
    /// The service's database.
    pub pool: PgPool,
    /// Signing keys.
    pub keys: KeyRing,
    /// Refresh-token store.
    pub refresh: RefreshTokens,
    /// Login throttle.
    pub throttle: LoginThrottle,
    /// Password hasher.
    pub hasher: Hasher,
    /// The OpenID providers of social login.
    pub oidc: Providers,
    /// Social logins started and not yet finished.
    pub pending: PendingLogins,
    /// Identity settings.
    pub settings: IdentitySettings,
    /// Token issuer and audience.
    pub auth: AuthConfig,
    /// Full name of `identity.events`.
    pub topic: String,
    /// Full name of `audit.events`.
    pub audit_topic: String,
    /// The service's metrics.
    pub metrics: ticketing_platform::metrics::Metrics,
}

/// What changing a password did to the caller's sessions.
#[derive(Debug, Clone)]
pub enum PasswordChanged {
    /// Every other session ended; the caller's own goes on.
    SessionKept,
    /// The caller's token named no live session, so every session ended; here is a new one.
    NewSession(TokenPair),
}

type Result<T> = std::result::Result<T, IdentityError>;

/// Namespace of the subjects of service tokens.
const SERVICE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5e6f_1c0a_9b2d_4e31_8f70_2a4b_6c8d_0001);

/// The stable subject (`sub`) of a workload's tokens.
pub fn service_subject(client_id: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&SERVICE_NAMESPACE, client_id.as_bytes())
}

impl Identity {
    /// Assembles the service.
    pub fn new(parts: Parts) -> Self {
        let logins = parts.metrics.register(
            &IntCounterVec::new(Opts::new("identity_logins_total", "Login attempts, by result."), &["result"])
                .expect("static metric definition"),
        );
        let edges = parts.settings.trusted_edge_clients.iter().map(|c| service_subject(c)).collect();
        Self {
            edges,
            pool: parts.pool,
            keys: parts.keys,
            refresh: parts.refresh,
            throttle: parts.throttle,
            hasher: parts.hasher,
            oidc: parts.oidc,
            pending: parts.pending,
            settings: parts.settings,
            auth: parts.auth,
            topic: parts.topic,
            audit_topic: parts.audit_topic,
            logins,
        }
    }

    /// Creates an account with role `user`, announces it and mails it a verification link
    /// (unless `identity.require_email_verification` is off). A taken email gets the same
    /// answer, after the same work (a password hash, one transaction): the owner is told
    /// by email instead, and the caller learns nothing about which addresses have accounts.
    pub async fn register(&self, email: &str, password: &str, name: &str) -> Result<()> {
        let (email, name) = self.validate_new_account(email, password, name)?;
        let verified = !self.settings.require_email_verification;
        self.create_user(&email, password, &name, Role::User, verified).await?;
        Ok(())
    }

    /// Verifies the email of the account `token` was mailed to. The token is used up.
    pub async fn verify_email(&self, token: &str) -> Result<User> {
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        let user_id = verifications::redeem(&mut tx, Purpose::VerifyEmail, token).await?;
        // Deleting the used or expired token is kept even when it verifies nothing.
        let user = match user_id {
            Some(id) => users::mark_verified(&mut tx, id).await?,
            None => None,
        };
        tx.commit().await.map_err(anyhow::Error::from)?;
        let user = user.ok_or(IdentityError::InvalidVerificationToken)?;
        tracing::info!(user_id = %user.id, "email verified");
        Ok(user)
    }

    /// Mails the user a new verification link, unless their email is verified already.
    pub async fn resend_verification(&self, id: uuid::Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        let user = users::lock(&mut tx, id).await?.ok_or(IdentityError::UserNotFound)?;
        if !user.email_verified {
            self.request_verification(&mut tx, &user).await?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Marks `user_id`'s email verified on behalf of the admin `actor`.
    pub async fn mark_verified(&self, actor: uuid::Uuid, user_id: &str) -> Result<User> {
        let user_id =
            uuid::Uuid::parse_str(user_id).map_err(|_| IdentityError::invalid("user_id", "must be a UUID"))?;
        let mut conn = self.pool.acquire().await.map_err(anyhow::Error::from)?;
        let user = users::mark_verified(&mut conn, user_id).await?.ok_or(IdentityError::UserNotFound)?;
        tracing::info!(%user_id, %actor, "email marked verified by an admin");
        Ok(user)
    }

    /// A new verification token for `user`, published for notification to mail.
    async fn request_verification(&self, tx: &mut sqlx::PgConnection, user: &User) -> Result<()> {
        let expires_at = Utc::now() + self.settings.email_verification_ttl;
        let token = verifications::issue(&mut *tx, Purpose::VerifyEmail, user.id, expires_at).await?;
        outbox::enqueue(tx, &self.topic, &publish::verification_requested(user, token, expires_at)).await?;
        Ok(())
    }

    /// The violations of `password` as the new password of an account whose email's local
    /// part is `local`, under `field`.
    fn password_violations(&self, field: &str, password: &str, local: &str) -> Vec<FieldViolation> {
        password::violations(password, self.settings.password_min_length, local)
            .into_iter()
            .map(|problem| FieldViolation::new(field, problem))
            .collect()
    }

    fn validate_new_account(&self, email: &str, password: &str, name: &str) -> Result<(Email, String)> {
        let mut violations = Vec::new();
        let email = Email::parse(email).map_err(|e| violations.push(FieldViolation::new("email", e))).ok();
        let local = email.as_ref().map_or("", Email::local_part);
        violations.extend(self.password_violations("password", password, local));
        let name = display_name(name, local).map_err(|e| violations.push(FieldViolation::new("display_name", e))).ok();
        match (email, name) {
            (Some(email), Some(name)) if violations.is_empty() => Ok((email, name)),
            _ => Err(IdentityError::Invalid(violations)),
        }
    }

    /// Inserts the user and its `UserRegistered` event (and unless `verified` a
    /// verification request) in one transaction; `None` if the email is taken, after a
    /// `RegistrationAttempted` event for its owner.
    async fn create_user(
        &self,
        email: &Email,
        password: &str,
        name: &str,
        role: Role,
        verified: bool,
    ) -> Result<Option<User>> {
        // Hashed before the email is looked at, so a taken email costs the same time.
        let hash = self.hasher.hash(password).await?;
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        let new =
            users::NewUser { email, display_name: name, password_hash: Some(&hash), role, email_verified: verified };
        let created = self.insert_user(&mut tx, &new).await?;
        let event = match &created {
            Some(_) => None,
            None => {
                // Taken by a concurrent registration and deleted since: nobody to tell.
                let Some((owner, _)) = users::by_email(&mut *tx, email).await? else { return Ok(None) };
                Some(publish::registration_attempted(&owner))
            }
        };
        if let Some(event) = event {
            outbox::enqueue(&mut tx, &self.topic, &event).await?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        match &created {
            Some(user) => tracing::info!(user_id = %user.id, role = %user.role, "user registered"),
            None => tracing::info!("registration of a taken email; its owner is told"),
        }
        Ok(created)
    }

    /// Inserts the user with its `UserRegistered` event and, unless it is verified, a
    /// verification request; `None` if the email is taken.
    async fn insert_user(&self, tx: &mut sqlx::PgConnection, new: &users::NewUser<'_>) -> Result<Option<User>> {
        let Some(user) = users::insert(&mut *tx, new).await? else { return Ok(None) };
        if !user.email_verified {
            self.request_verification(&mut *tx, &user).await?;
        }
        outbox::enqueue(tx, &self.topic, &publish::registered(&user)).await?;
        Ok(Some(user))
    }

    /// The authorization URL of a sign-in with the OpenID provider `provider`; its state,
    /// PKCE verifier and nonce are kept for `identity.oidc.state_ttl`.
    pub async fn start_oidc_login(&self, provider: &str) -> Result<String> {
        let started = self.oidc.start(provider).await?;
        self.pending.put(&started.state, &started.pending).await?;
        Ok(started.url)
    }

    /// Finishes a sign-in with `provider`: the state is used up, the code exchanged and the
    /// ID token verified; the provider account's user signs in (found by its link, linked
    /// by a verified email, or created) with tokens as a password login gets.
    pub async fn finish_oidc_login(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        origin: &Origin,
    ) -> Result<TokenPair> {
        self.oidc.knows(provider)?;
        let pending = self.pending.take(state).await?;
        let pending = pending.filter(|p| p.provider == provider).ok_or(IdentityError::InvalidOidcState)?;
        let account = match self.oidc.finish(pending, code).await {
            Ok(account) => account,
            Err(e) => {
                self.logins.with_label_values(&["oidc_refused"]).inc();
                return Err(e);
            }
        };
        let user = self.user_of(provider, &account).await?;
        self.logins.with_label_values(&["oidc"]).inc();
        tracing::info!(user_id = %user.id, provider, "signed in with an OpenID provider");
        let refresh = self.refresh.issue(user.id, origin).await?;
        self.token_pair(&user, refresh.token, refresh.expires_in, &refresh.session).await
    }

    /// The user a provider account signs in as: the one it is linked to; else the account
    /// with its email, linked now, when the provider and the account both verified the
    /// address; else a new account without a password.
    async fn user_of(&self, provider: &str, account: &ProviderAccount) -> Result<User> {
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        if let Some(user) = users::linked(&mut tx, provider, &account.subject).await? {
            return Ok(user);
        }
        let email = account.email.as_deref().and_then(|e| Email::parse(e).ok()).ok_or(IdentityError::OidcNoEmail)?;
        let user = match users::by_email(&mut *tx, &email).await? {
            // Someone who registered an address they never proved is not its owner, whom
            // the provider vouches for; and an address the provider does not vouch for
            // proves nothing about our account.
            Some((user, _)) if account.email_verified && user.email_verified => Some(user),
            Some(_) => return Err(IdentityError::OidcAccountConflict),
            None => {
                let fallback = email.local_part().to_owned();
                let name = display_name(account.name.as_deref().unwrap_or(""), &fallback).unwrap_or(fallback);
                let verified = account.email_verified || !self.settings.require_email_verification;
                let new = users::NewUser {
                    email: &email,
                    display_name: &name,
                    password_hash: None,
                    role: Role::User,
                    email_verified: verified,
                };
                self.insert_user(&mut tx, &new).await?
            }
        };
        match user {
            Some(user) if users::link(&mut tx, provider, &account.subject, user.id).await? => {
                tx.commit().await.map_err(anyhow::Error::from)?;
                tracing::info!(user_id = %user.id, provider, "linked a provider account");
                Ok(user)
            }
            // A concurrent first sign-in of the same person linked (or registered) first.
            _ => {
                drop(tx);
                let mut conn = self.pool.acquire().await.map_err(anyhow::Error::from)?;
                users::linked(&mut conn, provider, &account.subject).await?.ok_or(IdentityError::OidcAccountConflict)
            }
        }
    }

    /// Exchanges credentials for tokens, subject to throttling per account and client address.
    pub async fn login(&self, email: &str, password: &str, origin: &Origin) -> Result<TokenPair> {
        // Malformed emails cannot match an account; they are throttled and answered alike.
        let account = email.trim().to_lowercase();
        // Callers without an address share one, rather than escape the address's counters.
        let client_ip = origin.address.as_deref().unwrap_or("unknown");
        if let Some(retry_after) = self.throttle.begin(&account, client_ip).await? {
            self.logins.with_label_values(&["throttled"]).inc();
            return Err(IdentityError::Throttled { retry_after });
        }
        let found = match Email::parse(&account) {
            Ok(email) => users::by_email(&self.pool, &email).await?,
            Err(_) => None,
        };
        // An account without a password (made by a social login) answers as an unknown one.
        let ok = self.hasher.verify(password, found.as_ref().and_then(|(_, hash)| hash.as_deref())).await?;
        let Some((user, _)) = found.filter(|_| ok) else {
            self.logins.with_label_values(&["invalid_credentials"]).inc();
            return Err(IdentityError::InvalidCredentials);
        };
        self.throttle.succeeded(&account, client_ip).await?;
        self.logins.with_label_values(&["success"]).inc();
        let refresh = self.refresh.issue(user.id, origin).await?;
        self.token_pair(&user, refresh.token, refresh.expires_in, &refresh.session).await
    }

    /// Whether `caller` is a trusted edge, whose word on the client's address counts.
    pub fn is_trusted_edge(&self, caller: &Principal) -> bool {
        caller.has_role(Role::Service) && self.edges.contains(&caller.user_id)
    }

    /// Rotates a refresh token and issues a new pair with the user's current role.
    pub async fn refresh(&self, token: &str) -> Result<TokenPair> {
        match self.refresh.rotate(token).await? {
            Rotation::Rotated { user_id, session, token, expires_in } => {
                let mut conn = self.pool.acquire().await.map_err(anyhow::Error::from)?;
                let Some(user) = users::by_id(&mut conn, user_id).await? else {
                    self.refresh.revoke(&token).await?;
                    return Err(IdentityError::InvalidRefreshToken);
                };
                self.token_pair(&user, token, expires_in, &session).await
            }
            Rotation::Reused => {
                tracing::warn!("refresh token reuse detected; family revoked");
                Err(IdentityError::RefreshTokenReused)
            }
            Rotation::Invalid => Err(IdentityError::InvalidRefreshToken),
        }
    }

    /// Revokes the refresh token's family. Idempotent.
    pub async fn logout(&self, token: &str) -> Result<()> {
        Ok(self.refresh.revoke(token).await?)
    }

    /// The user `id`.
    pub async fn user(&self, id: uuid::Uuid) -> Result<User> {
        let mut conn = self.pool.acquire().await.map_err(anyhow::Error::from)?;
        users::by_id(&mut conn, id).await?.ok_or(IdentityError::UserNotFound)
    }

    /// Updates the profile fields that are given.
    pub async fn update_profile(&self, id: uuid::Uuid, name: Option<&str>) -> Result<User> {
        let Some(name) = name else { return self.user(id).await };
        if name.trim().is_empty() {
            return Err(IdentityError::invalid("display_name", "must not be empty"));
        }
        let name = display_name(name, "").map_err(|e| IdentityError::invalid("display_name", e))?;
        users::update_display_name(&self.pool, id, &name).await?.ok_or(IdentityError::UserNotFound)
    }

    /// Sets `user_id`'s role on behalf of the admin `actor`, refusing to demote the last admin,
    /// and records it in the audit log. The new role shows in the user's next access token.
    pub async fn set_role(&self, actor: &Actor, user_id: &str, role: Role) -> Result<User> {
        let user_id =
            uuid::Uuid::parse_str(user_id).map_err(|_| IdentityError::invalid("user_id", "must be a UUID"))?;
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        users::lock_roles(&mut tx).await?;
        let user = users::lock(&mut tx, user_id).await?.ok_or(IdentityError::UserNotFound)?;
        if user.role == role {
            return Ok(user);
        }
        if user.role == Role::Admin && users::count_admins(&mut tx).await? <= 1 {
            return Err(IdentityError::LastAdmin);
        }
        let updated = users::set_role(&mut tx, user_id, role).await?;
        outbox::enqueue(&mut tx, &self.topic, &publish::role_changed(&user, role, actor.user_id)).await?;
        let target = Target::new("user", user_id);
        let record = actor.record(
            "identity",
            "user.role_changed",
            target,
            Some(&json!({"role": user.role})),
            &json!({"role": role}),
        );
        ticketing_platform::audit::enqueue(&mut tx, &self.audit_topic, &record).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        tracing::info!(%user_id, actor = %actor.user_id, old = %user.role, new = %role, "role changed");
        Ok(updated)
    }

    /// Changes the caller's password after checking the current one (throttled as a login
    /// is), ends their other sessions and voids pending reset links.
    pub async fn change_password(&self, caller: &Principal, current: &str, new: &str) -> Result<PasswordChanged> {
        let user = self.user(caller.user_id).await?;
        let violations = self.password_violations("new_password", new, user.email.local_part());
        if !violations.is_empty() {
            return Err(IdentityError::Invalid(violations));
        }
        self.confirm_password(&user, current).await?;
        let hash = self.hasher.hash(new).await?;
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        users::lock(&mut tx, user.id).await?.ok_or(IdentityError::UserNotFound)?;
        users::set_password(&mut tx, user.id, &hash).await?;
        verifications::revoke_all(&mut tx, Purpose::ResetPassword, user.id).await?;
        outbox::enqueue(&mut tx, &self.topic, &publish::password_changed(&user, false, Utc::now())).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        let current_session = match session_of(&caller.token) {
            Some(sid) if self.refresh.is_live(user.id, &sid).await? => Some(sid),
            _ => None,
        };
        let ended = self.refresh.end_sessions(user.id, current_session.as_deref()).await?;
        tracing::info!(user_id = %user.id, ended, kept = current_session.is_some(), "password changed");
        if current_session.is_some() {
            return Ok(PasswordChanged::SessionKept);
        }
        let refresh = self.refresh.issue(user.id, &Origin::default()).await?;
        Ok(PasswordChanged::NewSession(
            self.token_pair(&user, refresh.token, refresh.expires_in, &refresh.session).await?,
        ))
    }

    /// Mails a password reset link to `email` if it has an account, voiding earlier links.
    /// The caller learns nothing either way.
    pub async fn forgot_password(&self, email: &str) -> Result<()> {
        let email = Email::parse(email).map_err(|e| IdentityError::invalid("email", e))?;
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        if let Some((user, _)) = users::by_email(&mut *tx, &email).await? {
            let expires_at = Utc::now() + self.settings.password_reset_ttl;
            let token = verifications::issue(&mut tx, Purpose::ResetPassword, user.id, expires_at).await?;
            outbox::enqueue(&mut tx, &self.topic, &publish::password_reset_requested(&user, token, expires_at)).await?;
            tracing::info!(user_id = %user.id, "password reset requested");
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Sets a new password with a reset token, which is used up, and ends every session.
    pub async fn reset_password(&self, token: &str, new: &str) -> Result<()> {
        // The rules that need no account first, so a weak password costs no hash.
        let violations = self.password_violations("new_password", new, "");
        if !violations.is_empty() {
            return Err(IdentityError::Invalid(violations));
        }
        let hash = self.hasher.hash(new).await?;
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        let user = match verifications::redeem(&mut tx, Purpose::ResetPassword, token).await? {
            Some(id) => users::lock(&mut tx, id).await?,
            None => None,
        };
        let Some(user) = user else {
            // Deleting a used or expired token is kept even when it resets nothing.
            tx.commit().await.map_err(anyhow::Error::from)?;
            return Err(IdentityError::InvalidResetToken);
        };
        let violations = self.password_violations("new_password", new, user.email.local_part());
        if !violations.is_empty() {
            // Rolled back: the link still works with a better password.
            return Err(IdentityError::Invalid(violations));
        }
        users::set_password(&mut tx, user.id, &hash).await?;
        outbox::enqueue(&mut tx, &self.topic, &publish::password_changed(&user, true, Utc::now())).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        let ended = self.refresh.end_sessions(user.id, None).await?;
        tracing::info!(user_id = %user.id, ended, "password reset");
        Ok(())
    }

    /// The caller's live sessions, each with whether the caller's token belongs to it.
    pub async fn sessions(&self, caller: &Principal) -> Result<Vec<(Session, bool)>> {
        let current = session_of(&caller.token);
        let sessions = self.refresh.sessions(caller.user_id).await?;
        Ok(sessions.into_iter().map(|s| (s.clone(), current.as_deref() == Some(s.id.as_str()))).collect())
    }

    /// Ends one of the caller's sessions; another user's is as unknown as a made-up one.
    pub async fn end_session(&self, caller: &Principal, id: &str) -> Result<()> {
        if self.refresh.end_session(caller.user_id, id).await? {
            tracing::info!(user_id = %caller.user_id, session = id, "session ended by its user");
            Ok(())
        } else {
            Err(IdentityError::SessionNotFound)
        }
    }

    /// Deletes the caller's account after checking `password`: erases its personal data,
    /// ends its sessions and announces `UserDeleted`. The last admin cannot leave.
    pub async fn delete_account(&self, caller: &Principal, password: &str) -> Result<()> {
        let user = self.user(caller.user_id).await?;
        self.confirm_password(&user, password).await?;
        let mut tx = self.pool.begin().await.map_err(anyhow::Error::from)?;
        users::lock_roles(&mut tx).await?;
        let user = users::lock(&mut tx, user.id).await?.ok_or(IdentityError::UserNotFound)?;
        if user.role == Role::Admin && users::count_admins(&mut tx).await? <= 1 {
            return Err(IdentityError::LastAdmin);
        }
        users::erase(&mut tx, user.id).await?;
        users::unlink_all(&mut tx, user.id).await?;
        for purpose in [Purpose::VerifyEmail, Purpose::ResetPassword] {
            verifications::revoke_all(&mut tx, purpose, user.id).await?;
        }
        outbox::enqueue(&mut tx, &self.topic, &publish::user_deleted(user.id)).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        let ended = self.refresh.end_sessions(user.id, None).await?;
        tracing::info!(user_id = %user.id, ended, "account deleted");
        Ok(())
    }

    /// Checks `user`'s password as a login would, throttled on the account's counters and
    /// on the user (in place of an address: the caller is signed in, and the gateway's
    /// address would make every user share one counter).
    async fn confirm_password(&self, user: &User, password: &str) -> Result<()> {
        let (account, caller) = (user.email.as_str(), format!("user:{}", user.id));
        if let Some(retry_after) = self.throttle.begin(account, &caller).await? {
            return Err(IdentityError::Throttled { retry_after });
        }
        let mut conn = self.pool.acquire().await.map_err(anyhow::Error::from)?;
        let hash = users::password_hash(&mut conn, user.id).await?;
        drop(conn);
        if !self.hasher.verify(password, hash.as_deref()).await? {
            return Err(IdentityError::WrongPassword);
        }
        self.throttle.succeeded(account, &caller).await?;
        Ok(())
    }

    /// The published signing keys.
    pub async fn jwks(&self) -> Result<jsonwebtoken::jwk::JwkSet> {
        Ok(self.keys.jwks().await?)
    }

    /// Rotates the signing keys; returns the new active kid.
    pub async fn rotate_keys(&self) -> Result<String> {
        Ok(self.keys.rotate().await?)
    }

    /// Withdraws the compromised key `kid` at once; returns the active kid.
    pub async fn revoke_key(&self, actor: uuid::Uuid, kid: &str) -> Result<String> {
        let active = self.keys.revoke(kid).await?.ok_or(IdentityError::SigningKeyNotFound)?;
        tracing::warn!(%actor, %kid, %active, "revoked a signing key");
        Ok(active)
    }

    /// Creates the configured admin account if missing. An existing account is left as it
    /// is: whoever registered that email first is not whoever holds the configured password.
    pub async fn bootstrap_admin(&self) -> anyhow::Result<()> {
        let (email, password) = (&self.settings.bootstrap_admin_email, &self.settings.bootstrap_admin_password);
        if email.is_empty() {
            return Ok(());
        }
        let (email, name) = self
            .validate_new_account(email, password, "Administrator")
            .map_err(|e| anyhow::anyhow!("identity.bootstrap_admin_*: {e}"))?;
        // Looked up first: on every later start the account exists, and registering it
        // again would email its owner about an attempt nobody made.
        if let Some((user, _)) = users::by_email(&self.pool, &email).await? {
            if user.role != Role::Admin {
                tracing::warn!(
                    user_id = %user.id,
                    role = %user.role,
                    "identity.bootstrap_admin_email belongs to an account that is not an admin; it is left as it \
                     is (an admin may promote it, or configure another email)"
                );
            }
            return Ok(());
        }
        // Whoever configures it reads the configuration, not necessarily the inbox.
        let created = self.create_user(&email, password, &name, Role::Admin, true).await;
        if created.map_err(anyhow::Error::from)?.is_some() {
            tracing::info!(email = %email, "created the bootstrap admin");
        }
        Ok(())
    }

    /// A `service` access token for a configured workload, and its expiry.
    pub async fn service_token(&self, client_id: &str, secret: &str) -> Result<(String, chrono::DateTime<Utc>)> {
        use sha2::Digest as _;
        // Comparing digests keeps the comparison's timing independent of the secret.
        let matches = self
            .settings
            .service_clients
            .get(client_id)
            .is_some_and(|expected| sha2::Sha256::digest(expected) == sha2::Sha256::digest(secret));
        if !matches {
            return Err(IdentityError::InvalidClientCredentials);
        }
        let now = Utc::now();
        let expires_at = now + self.settings.access_token_ttl;
        let scopes = self.settings.service_scopes.get(client_id).map_or(&[][..], Vec::as_slice);
        let claims = Claims {
            scope: Scope::claim(scopes),
            ..Claims::issue(
                service_subject(client_id).to_string(),
                vec![Role::Service],
                &self.auth,
                now.timestamp(),
                self.settings.access_token_ttl,
            )
        };
        Ok((self.keys.sign(&claims).await?, expires_at))
    }

    async fn token_pair(
        &self,
        user: &User,
        refresh_token: String,
        refresh_ttl: Duration,
        session: &str,
    ) -> Result<TokenPair> {
        let now = Utc::now();
        let access_expires_at = now + self.settings.access_token_ttl;
        let claims = Claims {
            email_verified: Some(user.email_verified),
            sid: Some(session.to_owned()),
            ..Claims::issue(
                user.id.to_string(),
                vec![user.role],
                &self.auth,
                now.timestamp(),
                self.settings.access_token_ttl,
            )
        };
        Ok(TokenPair {
            access_token: self.keys.sign(&claims).await?,
            access_expires_at,
            refresh_token,
            refresh_expires_at: now + refresh_ttl,
        })
    }
}
