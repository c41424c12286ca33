//! What the routes share: validation of bodies, queries and pages, and the conversions
//! between the API's values and the backends'.

use axum::extract::Query;
use chrono::{DateTime, Utc};

use super::dto::Money;
use crate::problem::{FieldError, Problem};

/// The bad fields of a request body, gathered so that one answer lists them all.
#[derive(Debug, Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// Records a bad `field`.
    pub fn bad(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), detail: detail.into() });
    }

    /// `raw` must be a UUID.
    pub fn id(&mut self, field: &str, raw: &str) {
        if uuid::Uuid::parse_str(raw).is_err() {
            self.bad(field, "must be a UUID");
        }
    }

    /// A price: the kernel's rule for money.
    pub fn money(&mut self, field: &str, money: &Money) {
        if let Err(violations) = ticketing_kernel::money::Money::parse(&money.currency, money.minor_units) {
            for (part, rule) in violations {
                self.bad(format!("{field}.{part}"), rule);
            }
        }
    }

    /// An optional RFC 3339 instant (a query parameter); `None` when absent or bad.
    pub fn instant(&mut self, field: &str, raw: Option<&str>) -> Option<prost_types::Timestamp> {
        match DateTime::parse_from_rfc3339(raw?) {
            Ok(at) => Some(ticketing_kernel::time::to_proto(at.with_timezone(&Utc))),
            Err(_) => {
                self.bad(field, "must be an RFC 3339 instant");
                None
            }
        }
    }

    /// 400 listing every bad field, if any.
    pub fn check(self) -> Result<(), Problem> {
        if self.0.is_empty() { Ok(()) } else { Err(Problem::invalid(self.0)) }
    }
}

/// Booking statuses by their names in the API.
pub const BOOKING_STATUSES: [(&str, ticketing_proto::booking::v1::BookingStatus); 6] = {
    use ticketing_proto::booking::v1::BookingStatus;
    [
        ("pending_payment", BookingStatus::PendingPayment),
        ("confirmed", BookingStatus::Confirmed),
        ("cancelled", BookingStatus::Cancelled),
        ("expired", BookingStatus::Expired),
        ("refund_pending", BookingStatus::RefundPending),
        ("refunded", BookingStatus::Refunded),
    ]
};

/// The API's name of a booking status (`unknown` for one it does not know).
pub fn booking_status(status: i32) -> &'static str {
    BOOKING_STATUSES.iter().find(|(_, s)| *s as i32 == status).map_or("unknown", |(name, _)| name)
}

/// Most items a page may ask for.
pub const MAX_PAGE: u32 = 100;

/// A listing's page: its cursor and a `limit` of 1 to [`MAX_PAGE`] items (absent: the
/// service's default).
pub fn page(cursor: Option<String>, limit: Option<u32>) -> Result<ticketing_proto::common::v1::PageRequest, Problem> {
    if limit.is_some_and(|l| !(1..=MAX_PAGE).contains(&l)) {
        return Err(Problem::field("limit", format!("must be 1 to {MAX_PAGE}")));
    }
    Ok(ticketing_proto::common::v1::PageRequest { limit: limit.unwrap_or(0), cursor: cursor.unwrap_or_default() })
}

/// A protobuf timestamp as an RFC 3339 instant (none when absent or invalid).
pub fn instant(t: Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.as_ref().and_then(ticketing_kernel::time::from_proto)
}

/// An empty string as `None`.
pub fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

/// A query string that does not parse is a 400 naming the problem.
pub fn query<T>(query: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, Problem> {
    query.map(|Query(q)| q).map_err(|e| {
        Problem::new(axum::http::StatusCode::BAD_REQUEST, "invalid-query", "Invalid query string", e.body_text())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_asks_for_1_to_100_items_or_the_default() {
        assert_eq!(page(None, None).unwrap().limit, 0, "the service's default");
        assert_eq!(
            page(Some("c".into()), Some(100)).unwrap(),
            ticketing_proto::common::v1::PageRequest { limit: 100, cursor: "c".into() }
        );
        for limit in [0, 101, u32::MAX] {
            let problem = page(None, Some(limit)).unwrap_err();
            assert_eq!((problem.status, problem.errors[0].field.as_str()), (400, "limit"), "{limit}");
        }
    }
}
