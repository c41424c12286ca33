//! Notification's integration tests, against real Postgres, the broker and a real SMTP
//! server (an in-test sink speaking SMTP over TCP).

mod checkin;
mod delivery;
mod emails;
mod helpers;
mod printed;
mod rotating;
mod sealing;
