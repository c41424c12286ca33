//! Printed tickets for the demo: the PDFs of a few demo buyers' confirmed bookings, as
//! `GET /v1/bookings/{id}/tickets.pdf` serves them, written to a folder a user can open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ticketing_proto::booking::v1 as booking;
use ticketing_proto::common::v1::PageRequest;
use ticketing_proto::identity::v1::Role;
use ticketing_proto::notification::v1 as notification;
use tonic::{Code, Status};

use crate::api::{Api, authed, channel, retry};
use crate::plan;

/// Where to print.
#[derive(Debug, Clone, clap::Args)]
pub struct PrintOptions {
    #[arg(long, env = "DEMO_NOTIFICATION_URL", default_value = "http://127.0.0.1:50056")]
    pub notification_url: String,
    /// Writes the tickets PDFs of a few confirmed demo bookings here (nothing without it).
    #[arg(long, env = "DEMO_TICKETS_DIR")]
    pub tickets_dir: Option<PathBuf>,
}

/// Bookings printed at most.
const BOOKINGS: usize = 3;
/// Demo buyers asked at most: their bookings were spread over every state.
const BUYERS: usize = 40;
/// How long notification may take to issue a confirmed booking's tickets (over Kafka).
const ISSUED: Duration = Duration::from_secs(120);

/// A printed booking.
#[derive(Debug)]
pub struct Printed {
    /// Whose it is.
    pub email: String,
    pub booking: String,
    pub file: PathBuf,
}

/// Prints up to [`BOOKINGS`] confirmed bookings of the first demo buyers into `dir`, each as
/// the buyer (only a booking's owner may print it).
pub async fn print(api: &Api, notification_url: &str, dir: &Path) -> anyhow::Result<Vec<Printed>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let notification = notification::notification_client::NotificationClient::new(channel(notification_url)?)
        // The largest booking's PDF (100 pages) stays well below this.
        .max_decoding_message_size(16 << 20);
    let mut printed = Vec::new();
    for person in plan::people().into_iter().filter(|p| p.role == Role::User).take(BUYERS) {
        if printed.len() == BOOKINGS {
            break;
        }
        let token = api.login(&person.email, person.password).await.context("a demo buyer's login")?;
        let mine = booking::ListMyBookingsRequest {
            statuses: vec![booking::BookingStatus::Confirmed as i32],
            page: Some(PageRequest { limit: 1, cursor: String::new() }),
        };
        let found = api.booking.clone().list_my_bookings(authed(mine, &token)).await?.into_inner();
        let Some(confirmed) = found.bookings.into_iter().next() else { continue };
        let pdf = retry(ISSUED, not_issued_yet, || {
            let request = notification::GetTicketsPdfRequest { booking_id: confirmed.id.clone() };
            let mut notification = notification.clone();
            let token = token.clone();
            async move { notification.get_tickets_pdf(authed(request, &token)).await }
        })
        .await
        .with_context(|| format!("printing booking {}", confirmed.id))?
        .into_inner();
        let file = dir.join(&pdf.filename);
        std::fs::write(&file, &pdf.pdf).with_context(|| format!("writing {}", file.display()))?;
        printed.push(Printed { email: person.email, booking: confirmed.id, file });
    }
    Ok(printed)
}

/// Notification has not issued the tickets yet, or is busy.
fn not_issued_yet(status: &Status) -> bool {
    matches!(status.code(), Code::NotFound | Code::Unavailable)
}
