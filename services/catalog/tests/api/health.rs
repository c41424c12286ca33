//! Readiness and gRPC health: SERVING once Postgres answers, under the API's own name.

use std::time::Duration;

use ticketing_testkit::eventually_every;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_catalog_reports_serving_and_ready() {
    let app = spawn_app().await;
    let health = HealthClient::new(app.service.channel().await);
    eventually_every("SERVING", Duration::from_secs(20), Duration::from_millis(100), || {
        let mut health = health.clone();
        async move {
            let request = HealthCheckRequest { service: "ticketing.catalog.v1.Catalog".into() };
            let status = health.check(request).await.map(|r| r.into_inner().status).ok();
            if status == Some(ServingStatus::Serving as i32) { Ok(()) } else { Err(format!("{status:?}")) }
        }
    })
    .await;
    let response = reqwest::get(format!("{}/readyz", app.service.admin_url())).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("postgres"), "{body}");
}
