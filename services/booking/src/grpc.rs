//! The gRPC transport: thin handlers over [`Bookings`], idempotency keys, and the
//! mapping of domain errors to statuses.

use std::time::Duration;

use ticketing_kernel::time::to_proto;
use ticketing_platform::auth::Principal;
use ticketing_platform::idempotency::{IdempotencyKeys, Scope, validate_key};
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::booking::v1::booking_server::Booking as BookingApi;
use ticketing_proto::common::v1::{Money, PageRequest, PageResponse};
use tonic::{Request, Response, Status};

use crate::domain::sales::{Bucket, SalesReport, Tally};
use crate::domain::{Booking, BookingError, Status as State};
use crate::service::{Bookings, Page};

/// Implements `ticketing.booking.v1.Booking`.
#[derive(Clone)]
pub struct Api {
    bookings: Bookings,
    keys: IdempotencyKeys,
}

impl Api {
    /// The API over `bookings`, with idempotency keys in `keys`.
    pub fn new(bookings: Bookings, keys: IdempotencyKeys) -> Self {
        Self { bookings, keys }
    }
}

impl From<BookingError> for Status {
    fn from(e: BookingError) -> Self {
        let message = e.to_string();
        match e {
            BookingError::Invalid(violations) => ticketing_platform::status::invalid_argument(&message, &violations),
            BookingError::NotFound | BookingError::HoldNotFound => Status::not_found(message),
            BookingError::HoldNotActive
            | BookingError::CategoryNotOnSale(_)
            | BookingError::IllegalTransition { .. } => Status::failed_precondition(message),
            BookingError::CancellationClosed(_) => ticketing_platform::status::refused("CANCELLATION_CLOSED", message),
            BookingError::TicketScanned => ticketing_platform::status::refused("TICKET_SCANNED", message),
            BookingError::AlreadyBooked(_) => Status::already_exists(message),
            BookingError::PermissionDenied => Status::permission_denied(message),
            BookingError::Unavailable(source) => {
                tracing::warn!(error = format!("{source:#}"), "booking dependency failed");
                ticketing_platform::status::retry_after(tonic::Code::Unavailable, message, Duration::from_secs(1))
            }
        }
    }
}

fn status_to_proto(status: State) -> pb::BookingStatus {
    match status {
        State::PendingPayment => pb::BookingStatus::PendingPayment,
        State::Confirmed => pb::BookingStatus::Confirmed,
        State::Cancelled => pb::BookingStatus::Cancelled,
        State::Expired => pb::BookingStatus::Expired,
        State::RefundPending => pb::BookingStatus::RefundPending,
        State::Refunded => pb::BookingStatus::Refunded,
    }
}

fn statuses(raw: &[i32]) -> Result<Vec<State>, Status> {
    raw.iter()
        .map(|&value| {
            State::ALL
                .into_iter()
                .find(|s| status_to_proto(*s) as i32 == value)
                .ok_or_else(|| BookingError::invalid("statuses", format!("{value} is not a booking status")).into())
        })
        .collect()
}

impl From<Booking> for pb::BookingDetails {
    fn from(b: Booking) -> Self {
        let money = |minor_units| Some(Money { currency: b.currency.clone(), minor_units });
        pb::BookingDetails {
            id: b.id.to_string(),
            user_id: b.user_id.to_string(),
            event_id: b.event_id.to_string(),
            hold_id: b.hold_id.clone(),
            status: status_to_proto(b.status) as i32,
            line_items: b
                .line_items
                .iter()
                .map(|i| pb::LineItem {
                    id: i.id.to_string(),
                    category_id: i.category_id.to_string(),
                    seat_id: i.seat_id.map(|s| s.to_string()),
                    label: i.label.clone(),
                    unit_price: money(i.unit_price_minor),
                })
                .collect(),
            total: money(b.total_minor),
            expires_at: Some(to_proto(b.expires_at)),
            payment_id: b.payment_id.map(|p| p.to_string()).unwrap_or_default(),
            cancellation_reason: b.cancellation_reason.clone(),
            created_at: Some(to_proto(b.created_at)),
            updated_at: Some(to_proto(b.updated_at)),
            confirmed_at: b.confirmed_at.map(to_proto),
            refunded: money(b.refunded_minor),
        }
    }
}

/// A request's optional instant; one that is out of range is a bad `field`.
fn optional_instant(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    t.map(|t| {
        ticketing_kernel::time::from_proto(t)
            .ok_or_else(|| BookingError::invalid(field, "is not a valid instant").into())
    })
    .transpose()
}

fn bucket(raw: i32) -> Result<Bucket, Status> {
    match pb::SalesBucket::try_from(raw) {
        Ok(pb::SalesBucket::Hour) => Ok(Bucket::Hour),
        // Days unless asked otherwise.
        Ok(pb::SalesBucket::Day | pb::SalesBucket::Unspecified) => Ok(Bucket::Day),
        Err(_) => Err(BookingError::invalid("bucket", format!("{raw} is not a bucket")).into()),
    }
}

fn bucket_to_proto(bucket: Bucket) -> pb::SalesBucket {
    match bucket {
        Bucket::Hour => pb::SalesBucket::Hour,
        Bucket::Day => pb::SalesBucket::Day,
    }
}

/// `tally`'s money in `currency`.
fn amounts(currency: &str, tally: &Tally) -> (Option<Money>, Option<Money>) {
    let money = |minor_units| Some(Money { currency: currency.to_owned(), minor_units });
    (money(tally.revenue_minor), money(tally.refunds_minor))
}

fn sales(event_id: String, report: SalesReport) -> pb::EventSales {
    pb::EventSales {
        event_id,
        categories: report
            .categories
            .iter()
            .map(|c| {
                let (revenue, refunds) = amounts(&c.currency, &c.tally);
                pb::CategorySales {
                    category_id: c.category_id.to_string(),
                    tickets_sold: c.tally.tickets_sold,
                    revenue,
                    tickets_refunded: c.tally.tickets_refunded,
                    refunds,
                }
            })
            .collect(),
        from: Some(to_proto(report.window.from)),
        to: Some(to_proto(report.window.to)),
        bucket: bucket_to_proto(report.window.bucket) as i32,
        series: report
            .series
            .iter()
            .map(|p| {
                let (revenue, refunds) = amounts(&p.currency, &p.tally);
                pb::SalesPoint {
                    start: Some(to_proto(p.start)),
                    tickets_sold: p.tally.tickets_sold,
                    revenue,
                    tickets_refunded: p.tally.tickets_refunded,
                    refunds,
                }
            })
            .collect(),
    }
}

fn listing((bookings, next): Page) -> pb::ListBookingsResponse {
    pb::ListBookingsResponse {
        bookings: bookings.into_iter().map(Into::into).collect(),
        page: Some(PageResponse { next_cursor: next.unwrap_or_default() }),
    }
}

#[tonic::async_trait]
impl BookingApi for Api {
    async fn create_booking(
        &self,
        request: Request<pb::CreateBookingRequest>,
    ) -> Result<Response<pb::BookingDetails>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        validate_key(&r.idempotency_key, "idempotency_key")?;
        let scope = Scope { operation: "booking.CreateBooking", caller: caller.user_id, key: &r.idempotency_key };
        let fingerprint = pb::CreateBookingRequest { idempotency_key: String::new(), ..r.clone() };
        let created =
            self.keys.once(scope, &fingerprint, async { Ok(self.bookings.create(&caller, &r.hold_id).await?.into()) });
        Ok(Response::new(created.await?))
    }

    async fn get_booking(
        &self,
        request: Request<pb::GetBookingRequest>,
    ) -> Result<Response<pb::BookingDetails>, Status> {
        let caller = Principal::of(&request)?;
        Ok(Response::new(self.bookings.get(&caller, &request.get_ref().booking_id).await?.into()))
    }

    async fn list_my_bookings(
        &self,
        request: Request<pb::ListMyBookingsRequest>,
    ) -> Result<Response<pb::ListBookingsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        let page = r.page.unwrap_or_default();
        Ok(Response::new(listing(
            self.bookings.mine(&caller, &statuses(&r.statuses)?, &page.cursor, page.limit).await?,
        )))
    }

    async fn list_event_bookings(
        &self,
        request: Request<pb::ListEventBookingsRequest>,
    ) -> Result<Response<pb::ListBookingsResponse>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        let PageRequest { cursor, limit } = r.page.unwrap_or_default();
        let page = self.bookings.of_event(&caller, &r.event_id, &statuses(&r.statuses)?, &cursor, limit).await?;
        Ok(Response::new(listing(page)))
    }

    async fn get_event_sales(
        &self,
        request: Request<pb::GetEventSalesRequest>,
    ) -> Result<Response<pb::EventSales>, Status> {
        let caller = Principal::of(&request)?;
        let r = request.into_inner();
        let window =
            (optional_instant("from", r.from.as_ref())?, optional_instant("to", r.to.as_ref())?, bucket(r.bucket)?);
        let report = self.bookings.sales(&caller, &r.event_id, window).await?;
        Ok(Response::new(sales(r.event_id, report)))
    }

    async fn cancel_booking(
        &self,
        request: Request<pb::CancelBookingRequest>,
    ) -> Result<Response<pb::BookingDetails>, Status> {
        let caller = Principal::of(&request)?;
        let actor = ticketing_platform::audit::Actor::of(&caller, &request);
        let r = request.into_inner();
        validate_key(&r.idempotency_key, "idempotency_key")?;
        let scope = Scope { operation: "booking.CancelBooking", caller: caller.user_id, key: &r.idempotency_key };
        let fingerprint = pb::CancelBookingRequest { idempotency_key: String::new(), ..r.clone() };
        let cancelled = self.keys.once(scope, &fingerprint, async {
            Ok(self.bookings.cancel(&caller, &actor, &r.booking_id, &r.reason).await?.into())
        });
        Ok(Response::new(cancelled.await?))
    }
}
