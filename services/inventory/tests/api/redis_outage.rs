//! Redis going away and coming back: holds fail fast with UNAVAILABLE, readiness follows
//! Redis, and selling resumes by itself.

use std::time::Duration;

use ticketing_testkit::eventually;
use ticketing_testkit::redis_server::PrivateRedis;
use tonic::Code;

use crate::helpers::{Fixture, ga, spawn_with};

/// The Redis response timeout, plus room for a loaded machine.
const BOUND: Duration = Duration::from_secs(3);

#[tokio::test]
async fn holds_are_unavailable_while_redis_is_down_and_sell_again_once_it_returns() {
    let mut redis = PrivateRedis::start();
    let app = spawn_with(|config| {
        config.redis.url = redis.url.clone();
        config.server.readiness_interval = Duration::from_millis(100);
    })
    .await;
    let fixture = Fixture::new(100, 1, 4, 10);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let user = uuid::Uuid::new_v4();
    let first = app.hold(user, fixture.event, ga(fixture.ga, 1)).await.expect("a hold while Redis is up");
    app.service.wait_ready(true).await;

    redis.kill();
    // The first may meet the dead connection; none may wait for a new one.
    for attempt in 0..3 {
        let hold = tokio::time::timeout(BOUND, app.hold(user, fixture.event, ga(fixture.ga, 1)));
        let refused = hold.await.expect("an answer within the bound").expect_err("no holds without Redis");
        assert_eq!(refused.code(), Code::Unavailable, "attempt {attempt}: {refused:?}");
    }
    app.service.wait_ready(false).await;

    redis.resume();
    let second = eventually("a hold after Redis returned", Duration::from_secs(10), || async {
        match tokio::time::timeout(BOUND, app.hold(user, fixture.event, ga(fixture.ga, 1))).await {
            Ok(Ok(hold)) => Some(hold),
            Ok(Err(status)) if status.code() == Code::Unavailable => None,
            outcome => panic!("a hold while Redis returns: {outcome:?}"),
        }
    })
    .await;
    app.service.wait_ready(true).await;

    // Redis kept its data across the restart: both holds are live and the counts add up.
    app.check_invariants(&fixture, &[first, second]).await;
    let held: u32 = app.availability(fixture.event).await.unwrap().categories.iter().map(|c| c.held).sum();
    assert_eq!(held, 2);
}
