//! Sales reports for an event's organizer: live counts from inventory with booking's sales
//! ledger (tickets and money, all time and over time), and a CSV export of the bookings.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ticketing_platform::auth::Role;
use ticketing_proto::booking::v1 as pb;
use ticketing_proto::common::v1::PageRequest;
use ticketing_proto::inventory::v1 as inventory;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::common::{Fields, booking_status, instant, query};
use super::dto::Money;
use crate::extract::{Caller, PathId};
use crate::problem::Problem;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stats)).routes(routes!(bookings_csv))
}

/// Parameters of `GET /v1/events/{id}/stats`: the window of its time series.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Start of the series (RFC 3339), rounded down to a whole bucket; default 48 hours
    /// (hourly) or 30 days (daily) before `to`.
    pub from: Option<String>,
    /// End of the series (RFC 3339, exclusive), rounded up to a whole bucket; default now.
    pub to: Option<String>,
    /// `hour` or `day` (default), in UTC. At most 744 hourly or 732 daily buckets.
    pub bucket: Option<String>,
}

/// Tickets and money of a category, or of the whole event.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Sales {
    /// Live, from inventory: `sold + held + available = capacity`.
    pub capacity: u32,
    pub sold: u32,
    pub held: u32,
    pub available: u32,
    /// Tickets of bookings confirmed, ever (refunded ones included).
    pub tickets_sold: u64,
    /// Tickets of bookings refunded in full.
    pub tickets_refunded: u64,
    /// What the tickets sold cost, per currency.
    pub revenue: Vec<Money>,
    /// What was paid back, per currency.
    pub refunds: Vec<Money>,
    /// `revenue − refunds`, per currency: what the event kept.
    pub net: Vec<Money>,
}

/// One category's sales.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryStats {
    pub category_id: String,
    #[serde(flatten)]
    pub sales: Sales,
}

/// One bucket of the series in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Point {
    pub start: Option<DateTime<Utc>>,
    pub tickets_sold: u64,
    pub tickets_refunded: u64,
    pub revenue: Option<Money>,
    pub refunds: Option<Money>,
}

/// Sales over time: every bucket of `[from, to)`, in every currency the event sold in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    /// `hour` or `day`.
    pub bucket: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Oldest first.
    pub points: Vec<Point>,
}

/// An event's sales report.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventStats {
    pub event_id: String,
    /// The whole event.
    pub totals: Sales,
    pub categories: Vec<CategoryStats>,
    pub series: Series,
}

/// Adds `money` to the sum in its currency.
fn add(sums: &mut Vec<Money>, money: Option<&ticketing_proto::common::v1::Money>, sign: i64) {
    let Some(money) = money else { return };
    match sums.iter_mut().find(|m| m.currency == money.currency) {
        Some(sum) => sum.minor_units += sign * money.minor_units,
        None => sums.push(Money { currency: money.currency.clone(), minor_units: sign * money.minor_units }),
    }
}

impl Sales {
    fn count(&mut self, c: &inventory::CategoryAvailability) {
        self.capacity += c.capacity;
        self.sold += c.sold;
        self.held += c.held;
        self.available += c.available;
    }

    fn book(&mut self, c: &pb::CategorySales) {
        self.tickets_sold += c.tickets_sold;
        self.tickets_refunded += c.tickets_refunded;
        add(&mut self.revenue, c.revenue.as_ref(), 1);
        add(&mut self.refunds, c.refunds.as_ref(), 1);
        add(&mut self.net, c.revenue.as_ref(), 1);
        add(&mut self.net, c.refunds.as_ref(), -1);
    }
}

/// The event's live counts per category (inventory) and its sales (booking's ledger): tickets
/// sold and refunded and their money per currency, all time, and per UTC `hour` or `day`
/// over `[from, to)`. `tickets_sold` counts every ticket ever confirmed, so after a refund
/// with its seats back on sale it can exceed `sold`. The event's organizer or an admin.
#[utoipa::path(get, path = "/v1/events/{id}/stats", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id"), StatsQuery),
    responses((status = 200, body = EventStats), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn stats(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: event, .. }: PathId,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<EventStats>, Problem> {
    caller.require(Role::Organizer)?;
    let q = query(q)?;
    let mut fields = Fields::default();
    let from = fields.instant("from", q.from.as_deref());
    let to = fields.instant("to", q.to.as_deref());
    let bucket = match q.bucket.as_deref() {
        None | Some("day") => pb::SalesBucket::Day,
        Some("hour") => pb::SalesBucket::Hour,
        Some(_) => {
            fields.bad("bucket", "must be hour or day");
            pb::SalesBucket::Unspecified
        }
    };
    fields.check()?;
    // Booking decides who may see the sales; the counts are public.
    let request = pb::GetEventSalesRequest { event_id: event.clone(), from, to, bucket: bucket as i32 };
    let sales = s.backends.booking.clone().get_event_sales(caller.request(request)).await?.into_inner();
    let request = inventory::AvailabilityRequest { event_id: event.clone(), ..Default::default() };
    let counts = match s.backends.inventory.clone().availability(request).await {
        Ok(counts) => counts.into_inner().categories,
        // Not stocked yet: a draft.
        Err(status) if status.code() == tonic::Code::NotFound => Vec::new(),
        Err(status) => return Err(status.into()),
    };

    let mut totals = Sales::default();
    let mut categories: Vec<CategoryStats> = Vec::new();
    let mut category = |id: &str| -> usize {
        match categories.iter().position(|c| c.category_id == id) {
            Some(at) => at,
            None => {
                categories.push(CategoryStats { category_id: id.to_owned(), sales: Sales::default() });
                categories.len() - 1
            }
        }
    };
    let mut at_counts = Vec::new();
    for c in &counts {
        at_counts.push((category(&c.category_id), c));
        totals.count(c);
    }
    let mut at_sales = Vec::new();
    for c in &sales.categories {
        at_sales.push((category(&c.category_id), c));
        totals.book(c);
    }
    for (at, c) in at_counts {
        categories[at].sales.count(c);
    }
    for (at, c) in at_sales {
        categories[at].sales.book(c);
    }
    let series = Series {
        bucket: if sales.bucket() == pb::SalesBucket::Hour { "hour" } else { "day" }.into(),
        from: instant(sales.from),
        to: instant(sales.to),
        points: sales
            .series
            .into_iter()
            .map(|p| Point {
                start: instant(p.start),
                tickets_sold: p.tickets_sold,
                tickets_refunded: p.tickets_refunded,
                revenue: p.revenue.map(Into::into),
                refunds: p.refunds.map(Into::into),
            })
            .collect(),
    };
    Ok(axum::Json(EventStats { event_id: event, totals, categories, series }))
}

/// The export's columns.
const COLUMNS: [&str; 12] = [
    "booking_id",
    "status",
    "created_at",
    "confirmed_at",
    "quantity",
    "category_ids",
    "seats",
    "total",
    "currency",
    "refunded",
    "user_id",
    "payment_id",
];

/// Bookings asked of booking per call while streaming.
const CSV_PAGE: u32 = 100;

/// A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a tab or carriage
/// return before one) is prefixed with `'`, so it stays text (OWASP's CSV injection advice).
fn text(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell.to_owned() }
}

/// One RFC 4180 record: every field quoted when it holds a comma, a quote or a line break
/// (quotes doubled), ended by CRLF.
fn record<S: AsRef<str>>(fields: &[S]) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        let field = field.as_ref();
        if i > 0 {
            line.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            line.push('"');
            line.push_str(&field.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(field);
        }
    }
    line.push_str("\r\n");
    line
}

/// A booking as a CSV record. Only the buyer's opaque id leaves: no email or name.
fn csv_row(b: &pb::BookingDetails) -> String {
    let at = |t: Option<prost_types::Timestamp>| {
        instant(t).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)).unwrap_or_default()
    };
    let mut categories: Vec<&str> = b.line_items.iter().map(|i| i.category_id.as_str()).collect();
    categories.dedup();
    let seats: Vec<&str> = b.line_items.iter().map(|i| i.label.as_str()).collect();
    let total = b.total.clone().unwrap_or_default();
    let refunded = b.refunded.as_ref().map_or(0, |m| m.minor_units);
    record(&[
        b.id.clone(),
        booking_status(b.status).to_owned(),
        at(b.created_at),
        at(b.confirmed_at),
        b.line_items.len().to_string(),
        categories.join(" "),
        text(&seats.join("; ")),
        ticketing_kernel::money::decimal(&total.currency, total.minor_units),
        text(&total.currency),
        ticketing_kernel::money::decimal(&total.currency, refunded),
        b.user_id.clone(),
        b.payment_id.clone(),
    ])
}

/// Where the export stands between two chunks.
enum Next {
    /// A page fetched, to write.
    Page(pb::ListBookingsResponse),
    /// The page after this cursor, to fetch.
    After(String),
    Done,
}

impl Next {
    fn after(page: &pb::ListBookingsResponse) -> Self {
        match page.page.as_ref().map(|p| p.next_cursor.clone()).filter(|c| !c.is_empty()) {
            Some(cursor) => Self::After(cursor),
            None => Self::Done,
        }
    }
}

/// Every booking of the event as CSV (RFC 4180, UTF-8, a header row, CRLF), newest first,
/// streamed page by page: booking id, status, created and confirmed at (RFC 3339), quantity,
/// category ids, seat labels, total and refunded amount (decimal, in `currency`), and the buyer
/// as an opaque user id. Text cells that a spreadsheet would run as a formula start with `'`.
/// The event's organizer or an admin.
#[utoipa::path(get, path = "/v1/events/{id}/bookings.csv", tag = "organizer", security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, description = "The bookings, one per line after the header", content_type = "text/csv",
               body = String),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn bookings_csv(
    State(s): State<AppState>,
    caller: Caller,
    PathId { raw: event, .. }: PathId,
) -> Result<Response, Problem> {
    caller.require(Role::Organizer)?;
    let token = caller.0.token.clone();
    let client = s.backends.booking.clone();
    let fetch = move |cursor: String| {
        let (mut client, event) = (client.clone(), event.clone());
        let request = pb::ListEventBookingsRequest {
            event_id: event,
            statuses: Vec::new(),
            page: Some(PageRequest { limit: CSV_PAGE, cursor }),
        };
        let request = ticketing_platform::auth::with_bearer(tonic::Request::new(request), &token);
        async move { client.list_event_bookings(request).await.map(tonic::Response::into_inner) }
    };
    // The first page before the first byte: a refusal is still a problem document.
    let first = fetch(String::new()).await?;
    let header = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from(record(&COLUMNS))) });
    let rows = futures::stream::unfold(Next::Page(first), move |next| {
        let fetch = fetch.clone();
        async move {
            let page = match next {
                Next::Done => return None,
                Next::Page(page) => page,
                Next::After(cursor) => match fetch(cursor).await {
                    Ok(page) => page,
                    Err(status) => {
                        // Too late for a problem: the client sees the body cut short.
                        tracing::warn!(error = %status, "a page of a CSV export failed");
                        return Some((Err(std::io::Error::other(status.to_string())), Next::Done));
                    }
                },
            };
            let chunk: String = page.bookings.iter().map(csv_row).collect();
            Some((Ok(Bytes::from(chunk)), Next::after(&page)))
        }
    });
    let body = Body::from_stream(futures::StreamExt::chain(header, rows));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"bookings.csv\"".to_owned()),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(record(&["a", "b c", ""]), "a,b c,\r\n");
        assert_eq!(record(&["x,y", "say \"hi\"", "two\nlines"]), "\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n");
    }

    #[test]
    fn formulas_in_text_cells_stay_text() {
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"] {
            assert_eq!(text(formula), format!("'{formula}"));
        }
        assert_eq!(text("Row 1, Seat 2"), "Row 1, Seat 2");
        assert_eq!(record(&[text("=HYPERLINK(\"x\")")]), "\"'=HYPERLINK(\"\"x\"\")\"\r\n");
    }
}
