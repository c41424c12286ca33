//! The stock gauges the oversell canary reads: sold from the ledger, live counts from Redis.

use ticketing_inventory::adapters::stock::Stock;
use ticketing_inventory::metrics::StockMetrics;
use ticketing_platform::metrics::Metrics;
use ticketing_testkit::eventually;

use crate::helpers::{Fixture, ga, seats, spawn_app};

#[tokio::test]
async fn stock_gauges_read_sold_from_the_ledger_and_holds_from_redis() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 1, 4, 6);
    app.stock(&fixture, &fixture.on_sale_now()).await;
    let user = uuid::Uuid::new_v4();
    let paid = app.hold(user, fixture.event, ga(fixture.ga, 3)).await.expect("hold");
    app.confirm(&paid, "booking-1").await.expect("confirm");
    app.hold(user, fixture.event, ga(fixture.ga, 2)).await.expect("hold");
    let seat = app.hold(user, fixture.event, seats(&[fixture.seat(0)])).await.expect("hold a seat");
    app.confirm(&seat, "booking-2").await.expect("confirm the seat");

    let metrics = Metrics::new("inventory");
    let redis = ticketing_platform::redis::connect(&app.redis.config).await.expect("redis");
    let stock = Stock::new(redis, &app.redis.config.key_prefix);
    let mut sampler = StockMetrics::new(app.db.pool.clone(), stock, &metrics);
    let samples = sampler.sample().await.expect("sample");
    let of = |category| samples.iter().find(|s| s.category == category).expect("sampled");
    let (floor, stand) = (of(fixture.ga), of(fixture.seated));
    assert_eq!((floor.capacity, floor.sold, floor.held, floor.available), (10, 3, 2, 5));
    assert_eq!((stand.capacity, stand.sold, stand.held, stand.available), (4, 1, 0, 3));

    let text = metrics.render();
    let series = |state: &str, category: uuid::Uuid| {
        format!(
            r#"inventory_category_seats{{category="{category}",event_id="{}",state="{state}",service="inventory"}}"#,
            fixture.event
        )
    };
    assert!(text.contains(&format!("{} 3", series("sold", fixture.ga))), "{text}");
    assert!(text.contains(&format!("{} 2", series("held", fixture.ga))), "{text}");
    assert!(text.contains(&format!("{} 1", series("sold", fixture.seated))), "{text}");
    let capacity = format!(
        r#"inventory_category_capacity{{category="{}",event_id="{}",service="inventory"}} 10"#,
        fixture.ga, fixture.event
    );
    assert!(text.contains(&capacity), "{text}");
}

#[tokio::test]
async fn events_whose_sale_ended_over_an_hour_ago_have_no_stock_series() {
    let app = spawn_app().await;
    let fixture = Fixture::new(10, 0, 0, 6);
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    app.publish(fixture.event, &fixture.published((now - 2 * day, now - day))).await;
    // The consumer stores the event; then the sampler leaves it out.
    eventually("the event to reach the ledger", std::time::Duration::from_secs(30), || async {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = $1")
            .bind(fixture.event)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        (stored == 1).then_some(())
    })
    .await;
    let metrics = Metrics::new("inventory");
    let redis = ticketing_platform::redis::connect(&app.redis.config).await.expect("redis");
    let mut sampler = StockMetrics::new(app.db.pool.clone(), Stock::new(redis, &app.redis.config.key_prefix), &metrics);
    assert!(sampler.sample().await.expect("sample").is_empty());
    assert!(!metrics.render().contains(&fixture.event.to_string()));
}
