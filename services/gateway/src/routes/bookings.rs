//! Bookings, their payment, cancellation and tickets, over booking, payment and
//! notification.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::notification::v1 as notification;
use ticketing_proto::payment::v1 as payment;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{BOOKING_STATUSES, booking_status, instant, non_empty, page, query};
use super::dto::{Money, Page, Ticket};
use crate::extract::{Caller, IdempotencyKey, Json, PathId};
use crate::problem::Problem;
use crate::resilience::{caller_paced, keyed};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(pay))
        .routes(routes!(cancel))
        .routes(routes!(tickets))
        .routes(routes!(tickets_pdf))
}

/// One ticket of a booking.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineItem {
    pub id: String,
    pub category_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat_id: Option<String>,
    pub label: String,
    pub unit_price: Option<Money>,
}

/// A booking.
#[derive(Debug, Serialize, ToSchema)]
pub struct Booking {
    pub id: String,
    pub event_id: String,
    pub hold_id: String,
    /// `pending_payment`, `confirmed`, `cancelled`, `expired`, `refund_pending` or `refunded`.
    pub status: String,
    pub line_items: Vec<LineItem>,
    pub total: Option<Money>,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<pb::BookingDetails> for Booking {
    fn from(b: pb::BookingDetails) -> Self {
        let status = booking_status(b.status);
        Self {
            id: b.id,
            event_id: b.event_id,
            hold_id: b.hold_id,
            status: status.into(),
            line_items: b
                .line_items
                .into_iter()
                .map(|i| LineItem {
                    id: i.id,
                    category_id: i.category_id,
                    seat_id: i.seat_id,
                    label: i.label,
                    unit_price: i.unit_price.map(Into::into),
                })
                .collect(),
            total: b.total.map(Into::into),
            expires_at: instant(b.expires_at),
            payment_id: non_empty(b.payment_id),
            cancellation_reason: non_empty(b.cancellation_reason),
            created_at: instant(b.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The caller's active hold.
    pub hold_id: String,
}

/// Books the caller's hold, priced from the catalog; it expires with the hold unless paid.
#[utoipa::path(post, path = "/v1/bookings", tag = "bookings", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 255 printable ASCII characters")),
    request_body = CreateBody,
    responses((status = 201, body = Booking), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem),
              (status = 409, body = Problem,
               description = "`already-exists` (the hold backs another booking), `conflict` (the hold is no longer \
                              active), or `in-progress`"),
              (status = 422, body = Problem)))]
async fn create(
    State(s): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    Json(b): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<Booking>), Problem> {
    let request = keyed(caller.request(pb::CreateBookingRequest { hold_id: b.hold_id, idempotency_key: key }));
    let booking = s.backends.booking.clone().create_booking(request).await?.into_inner();
    Ok((StatusCode::CREATED, axum::Json(booking.into())))
}

/// Parameters of `GET /v1/bookings`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only bookings in this status.
    pub status: Option<String>,
    pub cursor: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The caller's bookings, newest first.
#[utoipa::path(get, path = "/v1/bookings", tag = "bookings", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Page<Booking>), (status = 400, body = Problem), (status = 401, body = Problem)))]
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Page<Booking>>, Problem> {
    let q = query(q)?;
    let statuses = match q.status.as_deref() {
        None => vec![],
        Some(name) => match BOOKING_STATUSES.iter().find(|(n, _)| *n == name) {
            Some((_, status)) => vec![*status as i32],
            None => return Err(Problem::field("status", "is not a booking status")),
        },
    };
    let request = caller.request(pb::ListMyBookingsRequest { statuses, page: Some(page(q.cursor, q.limit)?) });
    let found = s.backends.booking.clone().list_my_bookings(request).await?.into_inner();
    Ok(axum::Json(Page {
        items: found.bookings.into_iter().map(Into::into).collect(),
        next_cursor: found.page.and_then(|p| non_empty(p.next_cursor)),
    }))
}

/// One booking: its buyer, the event's organizer or an admin.
#[utoipa::path(get, path = "/v1/bookings/{id}", tag = "bookings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id")),
    responses((status = 200, body = Booking), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem)))]
async fn get(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: booking, .. }: PathId,
) -> Result<axum::Json<Booking>, Problem> {
    let request = caller.request(pb::GetBookingRequest { booking_id: booking });
    Ok(axum::Json(s.backends.booking.clone().get_booking(request).await?.into_inner().into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayBody {
    /// The payment provider's card token, e.g. `tok_visa` with the simulated provider.
    pub card_token: String,
}

/// A payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct Payment {
    pub id: String,
    pub booking_id: String,
    pub amount: Option<Money>,
    /// `pending`, `succeeded`, `failed`, `unknown` (being reconciled), `refunded` or `partially_refunded`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
}

impl From<payment::PaymentDetails> for Payment {
    fn from(p: payment::PaymentDetails) -> Self {
        let status = match p.status() {
            payment::PaymentStatus::Pending => "pending",
            payment::PaymentStatus::Succeeded => "succeeded",
            payment::PaymentStatus::Failed => "failed",
            payment::PaymentStatus::Unknown => "unknown",
            payment::PaymentStatus::Refunded => "refunded",
            payment::PaymentStatus::PartiallyRefunded => "partially_refunded",
            payment::PaymentStatus::Unspecified => "unspecified",
        };
        Self {
            id: p.id,
            booking_id: p.booking_id,
            amount: p.amount.map(Into::into),
            status: status.into(),
            failure_code: non_empty(p.failure_code),
            failure_message: non_empty(p.failure_message),
        }
    }
}

/// Pays the booking's total. A booking is charged at most once; retry with the same
/// `Idempotency-Key` to get the first answer.
#[utoipa::path(post, path = "/v1/bookings/{id}/payment", tag = "bookings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 255 printable ASCII characters")),
    request_body = PayBody,
    responses((status = 200, body = Payment), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 503, body = Problem)))]
async fn pay(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: booking, .. }: PathId,
    IdempotencyKey(key): IdempotencyKey,
    Json(b): Json<PayBody>,
) -> Result<axum::Json<Payment>, Problem> {
    let lookup = caller.request(pb::GetBookingRequest { booking_id: booking.clone() });
    let total = s.backends.booking.clone().get_booking(lookup).await?.into_inner().total;
    let request =
        payment::ChargeRequest { booking_id: booking, amount: total, card_token: b.card_token, idempotency_key: key };
    // Payment learns bookings from booking's events and says UNAVAILABLE until it has;
    // with a key the call is idempotent, so the gateway retries it within its deadline.
    // A slow card is the buyer's: its timeout must not open payment's breaker for everyone.
    let charged = s.backends.payment.clone().charge(keyed(caller_paced(caller.request(request)))).await?;
    Ok(axum::Json(charged.into_inner().into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Kept with the booking (at most 500 characters); required when an admin refunds someone
    /// else's booking by hand.
    #[serde(default)]
    pub reason: String,
}

/// Cancels a booking. Unpaid ones end at once. Paid ones: their tickets are revoked first
/// (from then on they no longer admit), then the booking is refunded and its seats go back
/// on sale. Buyers may cancel within the event's cancellation policy (by default, until the
/// event starts) and not once one of the booking's tickets was scanned; admins may refund any
/// booking by hand, with a reason.
#[utoipa::path(post, path = "/v1/bookings/{id}/cancel", tag = "bookings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 255 printable ASCII characters")),
    request_body = CancelBody,
    responses((status = 200, body = Booking), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem),
              (status = 409, body = Problem,
               description = "`cancellation-closed` (the event's cancellation cut-off has passed), `ticket-scanned` \
                              (a ticket of the booking was used at the gate), `conflict` (not from this status), \
                              or `in-progress`")))]
async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: booking, .. }: PathId,
    IdempotencyKey(key): IdempotencyKey,
    Json(b): Json<CancelBody>,
) -> Result<axum::Json<Booking>, Problem> {
    let request =
        keyed(caller.request(pb::CancelBookingRequest { booking_id: booking, idempotency_key: key, reason: b.reason }));
    Ok(axum::Json(s.backends.booking.clone().cancel_booking(request).await?.into_inner().into()))
}

/// The tickets of a confirmed booking. The booking's owner also gets each ticket's
/// `rotation`, to show a rotating code; an admin sees the tickets without it.
#[utoipa::path(get, path = "/v1/bookings/{id}/tickets", tag = "bookings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id")),
    responses((status = 200, body = Vec<Ticket>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem, description = "Another buyer's booking"), (status = 404, body = Problem)))]
async fn tickets(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: booking, .. }: PathId,
) -> Result<axum::Json<Vec<Ticket>>, Problem> {
    let request = caller.request(notification::ListTicketsRequest { booking_id: booking });
    let found = s.backends.notification.clone().list_tickets(request).await?.into_inner();
    Ok(axum::Json(found.tickets.into_iter().map(Into::into).collect()))
}

/// A PDF document, as bytes (OpenAPI 3.1: a string whose content is `application/pdf`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/pdf")]
struct PdfDocument(Vec<u8>);

impl IntoResponse for PdfDocument {
    fn into_response(self) -> Response {
        let headers = [
            (header::CONTENT_TYPE, "application/pdf"),
            // Whoever holds a copy holds the tickets: no shared cache keeps one.
            (header::CACHE_CONTROL, "private, no-store"),
        ];
        (headers, self.0).into_response()
    }
}

/// The booking's tickets as a PDF to print or keep: one page per ticket that still admits,
/// with its event, venue, start, seat, booking reference, the buyer's name and its QR code
/// (the static signed code, which gates that also take printed tickets admit once). For
/// the booking's owner only; anyone else gets 404, as for a booking that does not exist.
#[utoipa::path(get, path = "/v1/bookings/{id}/tickets.pdf", tag = "bookings", security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id")),
    responses((status = 200, description = "The tickets, one page each", content_type = "application/pdf",
               body = PdfDocument,
               headers(("Content-Disposition" = String, description = "`attachment; filename=\"tickets-<id>.pdf\"`"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem,
               description = "Not the caller's booking, no such booking, or no tickets yet (or any more)")))]
async fn tickets_pdf(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: booking, .. }: PathId,
) -> Result<Response, Problem> {
    let request = caller.request(notification::GetTicketsPdfRequest { booking_id: booking });
    let printed = s.backends.notification.clone().get_tickets_pdf(request).await?.into_inner();
    // The name is notification's (`tickets-<uuid>.pdf`); only its safe characters reach the header.
    let filename: String =
        printed.filename.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')).collect();
    let disposition = [(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""))];
    Ok((disposition, PdfDocument(printed.pdf)).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tickets_pdf_is_documented_as_a_binary_pdf_attachment() {
        let (_, openapi) = crate::routes::api(&crate::config::GatewaySettings::default());
        let doc = serde_json::to_value(&openapi).unwrap();
        let ok = &doc["paths"]["/v1/bookings/{id}/tickets.pdf"]["get"]["responses"]["200"];
        let content = ok["content"].as_object().unwrap();
        assert_eq!(content.keys().collect::<Vec<_>>(), ["application/pdf"], "{ok}");
        let schema = &doc["components"]["schemas"]["PdfDocument"];
        assert_eq!(
            (schema["type"].as_str(), schema["contentMediaType"].as_str()),
            (Some("string"), Some("application/pdf"))
        );
        assert!(ok["headers"]["Content-Disposition"].is_object(), "{ok}");
    }
}
