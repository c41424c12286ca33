//! Account self-service through the gateway (issue 19): a forgotten password reset by the
//! emailed link, sessions listed and ended, and an account deleted while its bookings stay
//! on the organizer's books.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::identity::v1::Role;
use ticketing_testkit::eventually_every;
use ticketing_testkit::smtp::{emails_to, wait_for_emails};

use crate::harness::{Options, Platform, REGISTRATION_EMAILS, authed};
use crate::http::{Http, account, buy, path_of};

const PASSWORD: &str = "a-long-enough-passphrase";
const NEW_PASSWORD: &str = "a-brand-new-passphrase";

fn fresh_email() -> String {
    format!("fan-{}@example.com", ticketing_testkit::unique())
}

/// Signs in through the gateway as a client with `user_agent`; the whole token pair.
async fn login(http: &Http, email: &str, password: &str, user_agent: &str) -> (StatusCode, Value) {
    let response = http
        .client
        .post(format!("{}/v1/auth/login", http.base))
        .header("User-Agent", user_agent)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("the gateway answers");
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

async fn refresh(http: &Http, refresh_token: &str) -> StatusCode {
    let body = json!({"refresh_token": refresh_token});
    http.call(Method::POST, "/v1/auth/refresh", None, Some(body), None).await.0
}

/// The token in the link of the newest password reset email to `email`, once it arrived.
async fn reset_link_token(http: &Http, email: &str) -> String {
    let what = format!("a password reset email to {email}");
    eventually_every(&what, Duration::from_secs(60), Duration::from_millis(50), || async {
        let emails = emails_to(&http.smtp, email);
        let reset = emails.iter().rev().find(|e| e.subject == "Reset your Ticketing password")?;
        let link = reset.text.lines().find(|l| l.contains("/reset-password?token="))?;
        link.split_once("?token=").map(|(_, token)| token.trim().to_owned())
    })
    .await
}

/// The whole way back in: the reset link arrives by email, its token sets a new password
/// once, and every earlier sign-in ends; sessions are listed with the current one marked,
/// and a user ends their own but not someone else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_by_mail_and_sessions_are_the_users_to_end() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let email = fresh_email();
    account(&http, &email).await;
    let (status, laptop) = login(&http, &email, PASSWORD, "E2E-Laptop/1.0").await;
    assert_eq!(status, StatusCode::OK, "{laptop}");
    let (_, phone) = login(&http, &email, PASSWORD, "E2E-Phone/2.0").await;
    let laptop_token = path_of(&laptop, "access_token");

    let listed = http.ok(Method::GET, "/v1/me/sessions", Some(&laptop_token), None, None).await;
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "the account's first sign-in, the laptop and the phone: {listed}");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{listed}");
    assert_eq!(current[0]["user_agent"], "E2E-Laptop/1.0");
    let phone_session = sessions.iter().find(|s| s["user_agent"] == "E2E-Phone/2.0").expect("the phone's session");
    let path = format!("/v1/me/sessions/{}", path_of(phone_session, "id"));

    let stranger = p.user(Role::User).await;
    let (status, _, body) = http.call(Method::DELETE, &path, Some(&stranger.token), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's session: {body}");
    let (status, _, body) = http.call(Method::DELETE, &path, Some(&laptop_token), None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(refresh(&http, &path_of(&phone, "refresh_token")).await, StatusCode::UNAUTHORIZED, "ended");

    // Forgetting answers alike for an address without an account.
    let forgot = |address: &str| json!({"email": address});
    let known = http.call(Method::POST, "/v1/auth/password/forgot", None, Some(forgot(&email)), None).await;
    let unknown = http.call(Method::POST, "/v1/auth/password/forgot", None, Some(forgot(&fresh_email())), None).await;
    assert_eq!(known.0, StatusCode::ACCEPTED, "{}", known.2);
    assert_eq!((known.0, &known.2), (unknown.0, &unknown.2), "the same status and body");

    let token = reset_link_token(&http, &email).await;
    let reset = json!({"token": token, "new_password": NEW_PASSWORD});
    let (status, _, body) = http.call(Method::POST, "/v1/auth/password/reset", None, Some(reset.clone()), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, body) = http.call(Method::POST, "/v1/auth/password/reset", None, Some(reset), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the link works once: {body}");
    assert_eq!(body["errors"][0]["field"], "token", "{body}");

    assert_eq!(refresh(&http, &path_of(&laptop, "refresh_token")).await, StatusCode::UNAUTHORIZED, "signed out");
    // The owner is told, in case the reset was not theirs (ASVS V2.2.3).
    let what = format!("a password changed email to {email}");
    let notice = eventually_every(&what, Duration::from_secs(60), Duration::from_millis(50), || async {
        emails_to(&http.smtp, &email).into_iter().find(|e| e.subject == "Your Ticketing password was changed")
    })
    .await;
    assert!(notice.text.contains("with a reset link sent to this address"), "{}", notice.text);
    assert_eq!(login(&http, &email, PASSWORD, "E2E").await.0, StatusCode::UNAUTHORIZED, "the old password");
    let (status, again) = login(&http, &email, NEW_PASSWORD, "E2E").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let listed = http.ok(Method::GET, "/v1/me/sessions", Some(&path_of(&again, "access_token")), None, None).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "only the new sign-in: {listed}");
}

/// A deleted account's bookings stay on the organizer's books while identity forgets the
/// address (which may register again) and notification keeps no address, name or email
/// content of the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_leaves_its_bookings_and_no_personal_data() {
    let p = Platform::start(Options::default()).await;
    let http = Http::new(&p);
    let organizer = p.user(Role::Organizer).await;
    let event = p.event(&organizer, 10, 2, 1_000).await;
    let email = fresh_email();
    let token = account(&http, &email).await;
    let me = http.ok(Method::GET, "/v1/me", Some(&token), None, None).await;
    let user_id: uuid::Uuid = path_of(&me, "id").parse().unwrap();
    let (booking_id, _) = buy(&http, &token, &event.id, json!({"category_id": event.ga, "quantity": 1})).await;
    http.wait_for(&format!("/v1/bookings/{booking_id}"), &token, |b| b["status"] == "confirmed").await;
    // The welcome, the verification link and the tickets: the log has the user's emails.
    wait_for_emails(&p.smtp, &email, REGISTRATION_EMAILS + 1).await;

    let wrong = json!({"password": "not-the-passphrase"});
    let (status, _, body) = http.call(Method::DELETE, "/v1/me", Some(&token), Some(wrong), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, body) =
        http.call(Method::DELETE, "/v1/me", Some(&token), Some(json!({"password": PASSWORD})), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(http.call(Method::GET, "/v1/me", Some(&token), None, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(login(&http, &email, PASSWORD, "E2E").await.0, StatusCode::UNAUTHORIZED);

    let known: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE lower(email) = $1 OR (id = $2 AND display_name <> '')")
            .bind(&email)
            .bind(user_id)
            .fetch_one(&p.dbs["identity"].pool)
            .await
            .unwrap();
    assert_eq!(known, 0, "identity no longer knows the address or the name");

    let notification = &p.dbs["notification"].pool;
    let what = "notification to erase the user";
    eventually_every(what, Duration::from_secs(60), Duration::from_millis(100), || async {
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM users WHERE user_id = $1 AND (email <> '' OR display_name <> ''))
                  + (SELECT count(*) FROM deliveries WHERE user_id = $1 AND (recipient <> '' OR context <> '{}'))
                  + (SELECT count(*) FROM deliveries WHERE recipient = $2 OR context::text LIKE '%' || $2 || '%')",
        )
        .bind(user_id)
        .bind(&email)
        .fetch_one(notification)
        .await
        .unwrap();
        (left == 0).then_some(())
    })
    .await;
    let erased: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(notification)
        .await
        .unwrap();
    assert_eq!(erased, REGISTRATION_EMAILS as i64 + 1, "the log keeps that they were sent, not what");

    // The organizer's books keep the booking, under the opaque user id.
    let list = booking::ListEventBookingsRequest { event_id: event.id.clone(), ..Default::default() };
    let listed = p.booking.clone().list_event_bookings(authed(list, &organizer)).await.unwrap().into_inner();
    let kept = listed.bookings.iter().find(|b| b.id == booking_id).expect("the booking stays listed");
    assert_eq!(kept.user_id, user_id.to_string());
    assert_eq!(kept.status(), booking::BookingStatus::Confirmed);

    // The address is free: registering it again makes a new account, welcomed as one.
    let body = json!({"email": email, "password": PASSWORD});
    assert_eq!(http.call(Method::POST, "/v1/auth/register", None, Some(body), None).await.0, StatusCode::ACCEPTED);
    let emails = wait_for_emails(&p.smtp, &email, REGISTRATION_EMAILS * 2 + 1).await;
    let welcomes = emails.iter().filter(|e| e.subject.starts_with("Welcome to Ticketing")).count();
    assert_eq!(welcomes, 2, "{:?}", emails.iter().map(|e| &e.subject).collect::<Vec<_>>());
}
