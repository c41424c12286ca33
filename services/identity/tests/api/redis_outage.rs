//! Redis going away and coming back: logins and refreshes fail fast with UNAVAILABLE,
//! readiness follows Redis, and both work again by themselves.

use std::time::Duration;

use ticketing_testkit::eventually;
use ticketing_testkit::redis_server::PrivateRedis;
use tonic::Code;

use crate::helpers::{PASSWORD, email, spawn_with};

/// The Redis response timeout, plus room for a loaded machine.
const BOUND: Duration = Duration::from_secs(3);

#[tokio::test]
async fn logins_and_refreshes_are_unavailable_while_redis_is_down_and_work_once_it_returns() {
    let mut redis = PrivateRedis::start();
    let app = spawn_with(|config| {
        config.redis.url = redis.url.clone();
        config.server.readiness_interval = Duration::from_millis(100);
    })
    .await;
    let email = email();
    app.register(&email).await;
    let tokens = app.login(&email, PASSWORD).await.expect("a login while Redis is up");
    app.service.wait_ready(true).await;

    redis.kill();
    // The first may meet the dead connection; none may wait for a new one.
    for attempt in 0..3 {
        let login = tokio::time::timeout(BOUND, app.login(&email, PASSWORD)).await.expect("a login answer in time");
        assert_eq!(login.expect_err("no logins without Redis").code(), Code::Unavailable, "login {attempt}");
        let refresh = tokio::time::timeout(BOUND, app.refresh(&tokens.refresh_token)).await.expect("in time");
        assert_eq!(refresh.expect_err("no refresh without Redis").code(), Code::Unavailable, "refresh {attempt}");
    }
    app.service.wait_ready(false).await;

    redis.resume();
    eventually("a login after Redis returned", Duration::from_secs(10), || async {
        match tokio::time::timeout(BOUND, app.login(&email, PASSWORD)).await {
            Ok(Ok(tokens)) => Some(tokens),
            Ok(Err(status)) if status.code() == Code::Unavailable => None,
            outcome => panic!("a login while Redis returns: {outcome:?}"),
        }
    })
    .await;
    // The family issued before the outage survived it (Redis kept its data) and rotates once.
    app.refresh(&tokens.refresh_token).await.expect("the pre-outage refresh token rotates");
    app.service.wait_ready(true).await;
}
