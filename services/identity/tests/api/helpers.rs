//! Spawning identity in-process against a fresh database, key prefix and topic namespace.

use std::time::Duration;

use ticketing_identity::config::Config;
use ticketing_platform::kafka::KafkaConfig;
use ticketing_proto::identity::v1 as pb;
use ticketing_proto::identity::v1::identity_client::IdentityClient;
use ticketing_testkit::{Spawned, TestDb, TestRedis};
use tonic::transport::Channel;

pub const ADMIN_EMAIL: &str = "root@ticketing.test";
pub const ADMIN_PASSWORD: &str = "bootstrap-admin-pass";
pub const PASSWORD: &str = "a-long-enough-passphrase";
/// The gateway's client secret: its service token vouches for client addresses.
pub const EDGE_SECRET: &str = "gateway-test-secret-of-at-least-32-chars";
/// Another workload's, whose word on addresses does not count.
pub const OTHER_SECRET: &str = "booking-test-secret-of-at-least-32-chars";

pub struct TestApp {
    pub client: IdentityClient<Channel>,
    pub config: Config,
    pub db: TestDb,
    pub redis: TestRedis,
    pub kafka: KafkaConfig,
    pub service: Spawned,
}

/// The defaults tests start from: loopback ports, the test's own state, fast throttling.
pub async fn test_config() -> (Config, TestDb, TestRedis, KafkaConfig) {
    ticketing_testkit::init_logging();
    let db = TestDb::new(&ticketing_identity::migrator()).await;
    let redis = TestRedis::for_service("identity");
    let kafka = ticketing_testkit::kafka_config();
    let mut config = Config::default();
    config.server = ticketing_testkit::server_config();
    config.database = db.config.clone();
    config.redis = redis.config.clone();
    config.kafka = kafka.clone();
    config.identity.bootstrap_admin_email = ADMIN_EMAIL.into();
    config.identity.bootstrap_admin_password = ADMIN_PASSWORD.into();
    config.identity.login.delay_base = Duration::from_millis(200);
    config.identity.service_clients.insert("gateway".into(), EDGE_SECRET.into());
    config.identity.service_clients.insert("booking".into(), OTHER_SECRET.into());
    (config, db, redis, kafka)
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let (mut config, db, redis, kafka) = test_config().await;
    customize(&mut config);
    start(config, db, redis, kafka).await
}

/// Identity with a broker that refuses connections, so every event stays in its outbox
/// for the test to read. It creates no topics there: that would wait out the admin
/// client's timeout before the service starts.
pub async fn spawn_unpublished() -> TestApp {
    spawn_unpublished_with(|_| {}).await
}

/// [`spawn_unpublished`] with `customize` applied too.
pub async fn spawn_unpublished_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    spawn_with(|c| {
        c.kafka.brokers = "127.0.0.1:9".into();
        c.kafka.create_topics = false;
        customize(c);
    })
    .await
}

/// Starts identity with `config` on state the test prepared.
pub async fn start(config: Config, db: TestDb, redis: TestRedis, kafka: KafkaConfig) -> TestApp {
    let running = ticketing_identity::startup::build(config.clone()).await.expect("identity starts");
    let service = Spawned::start(running);
    let client = IdentityClient::new(service.channel().await);
    TestApp { client, config, db, redis, kafka, service }
}

/// A unique address, so tests sharing nothing never collide.
pub fn email() -> String {
    format!("user-{}@example.com", ticketing_testkit::unique())
}

pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    ticketing_platform::auth::with_bearer(tonic::Request::new(message), token)
}

impl TestApp {
    /// Registers `email` and reads the account back (Register's answer names none),
    /// leaving no session behind.
    pub async fn register(&self, email: &str) -> pb::User {
        let (user, tokens) = self.register_and_login(email).await;
        let logout = pb::LogoutRequest { refresh_token: tokens.refresh_token };
        self.client.clone().logout(logout).await.expect("logout");
        user
    }

    async fn register_and_login(&self, email: &str) -> (pb::User, pb::TokenPair) {
        let request =
            pb::RegisterRequest { email: email.into(), password: PASSWORD.into(), display_name: String::new() };
        self.client.clone().register(request).await.expect("register");
        let tokens = self.login(email, PASSWORD).await.expect("login");
        (self.me(&tokens.access_token).await.expect("me"), tokens)
    }

    /// A `service` token of `client` (`gateway` or `booking`).
    pub async fn service_token(&self, client: &str) -> String {
        let secret = if client == "gateway" { EDGE_SECRET } else { OTHER_SECRET };
        let request = pb::IssueServiceTokenRequest { client_id: client.into(), client_secret: secret.into() };
        self.client.clone().issue_service_token(request).await.expect("a service token").into_inner().access_token
    }

    /// Logs in the way the gateway does for a client at `ip`.
    pub async fn login_from(&self, ip: &str, email: &str, password: &str) -> Result<pb::TokenPair, tonic::Status> {
        let token = self.service_token("gateway").await;
        self.login_claiming(Some(&token), ip, email, password).await
    }

    /// Logs in with `token` as the caller's (none: anonymous), claiming the client is at `ip`
    /// in every header that could name it.
    pub async fn login_claiming(
        &self,
        token: Option<&str>,
        ip: &str,
        email: &str,
        password: &str,
    ) -> Result<pb::TokenPair, tonic::Status> {
        let message = pb::LoginRequest { email: email.into(), password: password.into() };
        let mut request = match token {
            Some(token) => authed(message, token),
            None => tonic::Request::new(message),
        };
        for header in [ticketing_platform::peers::CLIENT_ADDRESS, "x-forwarded-for"] {
            request.metadata_mut().insert(header, ip.parse().expect("an address"));
        }
        self.client.clone().login(request).await.map(tonic::Response::into_inner)
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<pb::TokenPair, tonic::Status> {
        let request = pb::LoginRequest { email: email.into(), password: password.into() };
        self.client.clone().login(request).await.map(tonic::Response::into_inner)
    }

    /// Registers a fresh user and logs in.
    pub async fn user_session(&self) -> (pb::User, pb::TokenPair) {
        self.register_and_login(&email()).await
    }

    pub async fn admin_session(&self) -> pb::TokenPair {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.expect("admin login")
    }

    pub async fn refresh(&self, token: &str) -> Result<pb::TokenPair, tonic::Status> {
        let request = pb::RefreshRequest { refresh_token: token.into() };
        self.client.clone().refresh(request).await.map(tonic::Response::into_inner)
    }

    pub async fn me(&self, token: &str) -> Result<pb::User, tonic::Status> {
        self.client.clone().get_me(authed(pb::GetMeRequest {}, token)).await.map(tonic::Response::into_inner)
    }
}

/// The events of type `M` in identity's outbox, oldest first.
pub async fn outbox<M: prost::Message + prost::Name + Default>(app: &TestApp) -> Vec<M> {
    use prost::Message as _;
    let envelopes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = $1 ORDER BY seq")
        .bind(M::full_name())
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    let decode = |e: &Vec<u8>| ticketing_proto::events::v1::Envelope::decode(&e[..]).unwrap();
    envelopes.iter().map(|e| ticketing_platform::events::payload::<M>(&decode(e)).unwrap()).collect()
}
