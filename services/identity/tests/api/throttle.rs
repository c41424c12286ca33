//! Login throttling (ADR 0026): progressive delays per account and client address, per
//! account and per address, never a lock; and the address is the gateway's word or the
//! peer's, never what another caller claims.

use std::collections::BTreeSet;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::helpers::{PASSWORD, TestApp, email, spawn_with};

const WRONG: &str = "not-the-right-passphrase";

/// The wait a throttled attempt was told.
fn wait(status: &Status) -> Duration {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    status.get_details_retry_info().and_then(|r| r.retry_delay).expect("every refusal gives the wait")
}

/// Guesses wrong as `email` from `ip` until identity checked `times` guesses, waiting as
/// each refusal says.
async fn fail(app: &TestApp, ip: &str, email: &str, times: usize) {
    let mut checked = 0;
    while checked < times {
        match app.login_from(ip, email, WRONG).await {
            Err(status) if status.code() == Code::Unauthenticated => checked += 1,
            Err(status) => tokio::time::sleep(wait(&status)).await,
            Ok(_) => panic!("a wrong password logged in"),
        }
    }
}

#[tokio::test]
async fn a_stranger_is_slowed_and_cannot_lock_the_owner_out() {
    let app = spawn_with(|c| {
        c.identity.login.free_failures = 2;
        c.identity.login.delay_base = Duration::from_millis(10);
        c.identity.login.max_delay = Duration::from_secs(60);
    })
    .await;
    let owner = email();
    app.register(&owner).await;
    // Ten checked guesses: what used to lock the account for 15 minutes.
    fail(&app, "203.0.113.7", &owner, 10).await;
    let refused = app.login_from("203.0.113.7", &owner, PASSWORD).await.unwrap_err();
    assert!(wait(&refused) > Duration::ZERO, "the stranger waits, even with the right password");

    app.login_from("198.51.100.1", &owner, PASSWORD).await.expect("the owner logs in from their own address");
}

#[tokio::test]
async fn guesses_from_many_addresses_delay_the_account_up_to_a_short_cap() {
    let cap = Duration::from_secs(2);
    let app = spawn_with(|c| {
        c.identity.login.free_failures = 2;
        c.identity.login.delay_base = Duration::from_millis(10);
        c.identity.login.account_free_failures = 4;
        c.identity.login.account_max_delay = cap;
    })
    .await;
    let owner = email();
    app.register(&owner).await;
    for i in 1..=14 {
        fail(&app, &format!("192.0.2.{i}"), &owner, 1).await;
    }
    // A fresh address gets no free guess while the account is delayed…
    let refused = app.login_from("192.0.2.200", &owner, WRONG).await.unwrap_err();
    assert!(wait(&refused) <= cap, "{refused:?}");
    // …and the owner waits at most the cap, then logs in.
    loop {
        match app.login_from("198.51.100.1", &owner, PASSWORD).await {
            Ok(_) => break,
            Err(status) => {
                let wait = wait(&status);
                assert!(wait <= cap, "{wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[tokio::test]
async fn spraying_accounts_from_one_address_slows_that_address_only() {
    let app = spawn_with(|c| {
        c.identity.login.ip_free_failures = 5;
        c.identity.login.delay_base = Duration::from_secs(30);
    })
    .await;
    for _ in 0..6 {
        let status = app.login_from("203.0.113.7", &email(), WRONG).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let owner = email();
    app.register(&owner).await;
    let refused = app.login_from("203.0.113.7", &owner, PASSWORD).await.unwrap_err();
    assert!(wait(&refused) > Duration::ZERO);
    app.login_from("198.51.100.1", &owner, PASSWORD).await.expect("the account from another address logs in");
}

#[tokio::test]
async fn a_burst_of_parallel_guesses_gets_no_further_than_serial_ones() {
    let app = spawn_with(|c| {
        c.identity.login.free_failures = 2;
        c.identity.login.delay_base = Duration::from_secs(60);
    })
    .await;
    let address = email();
    app.register(&address).await;
    let attempts = (0..20).map(|i| app.login(&address, if i == 19 { PASSWORD } else { WRONG }));
    let results = futures::future::join_all(attempts).await;
    let checked = results.iter().filter(|r| !matches!(r, Err(s) if s.code() == Code::ResourceExhausted)).count();
    // Two free attempts, then the third earns a delay before its password is even checked.
    assert!(checked <= 3, "{checked} passwords were checked: {results:?}");
}

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
