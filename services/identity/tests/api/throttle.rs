//! Login throttling: the client's address is the gateway's word or the peer's, never
//! what another caller claims.

use std::collections::BTreeSet;

use crate::helpers::{TestApp, email, spawn_with};

const WRONG: &str = "not-the-right-passphrase";

/// The addresses identity counted failures against.
fn counted_addresses(app: &TestApp) -> BTreeSet<String> {
    app.redis.keys().iter().filter_map(|key| key.split_once("login:ip:").map(|(_, ip)| ip.to_owned())).collect()
}

#[tokio::test]
async fn only_the_gateway_names_the_clients_address() {
    let app = spawn_with(|_| {}).await;
    let booking = app.service_token("booking").await;
    // Anonymous and another workload's token: their claims are ignored; the peer counts.
    app.login_claiming(None, "192.0.2.1", &email(), WRONG).await.unwrap_err();
    app.login_claiming(Some(&booking), "192.0.2.2", &email(), WRONG).await.unwrap_err();
    let peer: Vec<String> = counted_addresses(&app).into_iter().collect();
    assert_eq!(peer.len(), 1, "{peer:?}");
    assert!(peer[0].parse::<std::net::IpAddr>().unwrap().is_loopback(), "{peer:?}");

    app.login_from("198.51.100.9", &email(), WRONG).await.unwrap_err();
    let expected: BTreeSet<String> = [peer[0].clone(), "198.51.100.9".to_owned()].into();
    assert_eq!(counted_addresses(&app), expected, "the gateway's word counts");
}
