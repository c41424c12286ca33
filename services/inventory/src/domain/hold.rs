//! Holds: what was asked for, what was held, and how a hold ends.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// A hold's id: its event's id and its own, so any replica finds the event's
/// Redis shard from the id alone. Rendered as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HoldId {
    /// The event the hold belongs to.
    pub event: uuid::Uuid,
    /// The hold itself (time-ordered).
    pub hold: uuid::Uuid,
}

impl HoldId {
    /// A fresh id for a hold on `event`.
    pub fn new(event: uuid::Uuid) -> Self {
        Self { event, hold: uuid::Uuid::now_v7() }
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.event.simple(), self.hold.simple())
    }
}

impl FromStr for HoldId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || "must be a hold id (64 hex digits)".to_owned();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let event = uuid::Uuid::parse_str(&s[..32]).map_err(|_| bad())?;
        let hold = uuid::Uuid::parse_str(&s[32..]).map_err(|_| bad())?;
        Ok(Self { event, hold })
    }
}

/// What a buyer asks to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// A quantity of a general-admission category.
    GeneralAdmission {
        /// The category.
        category: uuid::Uuid,
        /// How many tickets.
        quantity: u32,
    },
    /// These exact seats.
    Seats(Vec<uuid::Uuid>),
    /// The best free seats of a seated category, adjacent in one row when possible.
    BestAvailable {
        /// The category.
        category: uuid::Uuid,
        /// How many seats.
        quantity: u32,
        /// Fail rather than split the group.
        require_adjacent: bool,
    },
}

impl Selection {
    /// Tickets asked for.
    pub fn quantity(&self) -> u32 {
        match self {
            Self::GeneralAdmission { quantity, .. } | Self::BestAvailable { quantity, .. } => *quantity,
            Self::Seats(seats) => seats.len() as u32,
        }
    }

    /// A stable digest of the request, so an idempotency key reused for a different
    /// request is detected.
    pub fn fingerprint(&self) -> String {
        match self {
            Self::GeneralAdmission { category, quantity } => format!("ga:{category}:{quantity}"),
            Self::Seats(seats) => {
                let mut sorted: Vec<String> = seats.iter().map(uuid::Uuid::to_string).collect();
                sorted.sort();
                format!("seats:{}", sorted.join(","))
            }
            Self::BestAvailable { category, quantity, require_adjacent } => {
                format!("best:{category}:{quantity}:{require_adjacent}")
            }
        }
    }
}

/// Where a hold is in its life. `Active` ends exactly once: `Confirmed`, `Released`
/// or `Expired`; only `Confirmed` may later become `Restocked`. `Confirming` is the
/// moment between the fencing check and the ledger write, when expiry must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    /// Tickets are held.
    Active,
    /// The sale is being written to the ledger.
    Confirming,
    /// Sold.
    Confirmed,
    /// Given back before expiry.
    Released,
    /// Timed out.
    Expired,
    /// Sold, then refunded and returned to stock.
    Restocked,
}

impl HoldStatus {
    /// The name stored in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Confirming => "confirming",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Restocked => "restocked",
        }
    }

    /// Whether the hold still covers tickets that are not sold.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::Confirming)
    }
}

impl FromStr for HoldStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "active" => Self::Active,
            "confirming" => Self::Confirming,
            "confirmed" => Self::Confirmed,
            "released" => Self::Released,
            "expired" => Self::Expired,
            "restocked" => Self::Restocked,
            other => return Err(format!("unknown hold status {other:?}")),
        })
    }
}

/// What a hold covers in one category.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HoldLine {
    /// The category.
    pub category_id: uuid::Uuid,
    /// Tickets in it.
    pub quantity: u32,
    /// The seats, for seated categories.
    pub seat_ids: Vec<uuid::Uuid>,
}

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Its id.
    pub id: HoldId,
    /// Who it is for.
    pub user: uuid::Uuid,
    /// Where it is in its life.
    pub status: HoldStatus,
    /// When it expires unless confirmed.
    pub expires_at: SystemTime,
    /// Must be presented to confirm it.
    pub fencing_token: u64,
    /// What it covers, one line per category.
    pub lines: Vec<HoldLine>,
    /// When it was placed.
    pub created_at: SystemTime,
    /// When it ended, if it has.
    pub ended_at: Option<SystemTime>,
    /// The booking it was sold to.
    pub booking_id: Option<String>,
}

impl Hold {
    /// Tickets held.
    pub fn quantity(&self) -> u32 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

/// Groups seats by category, keeping their order, into hold lines.
pub fn seat_lines(seats: &[(uuid::Uuid, uuid::Uuid)]) -> Vec<HoldLine> {
    let mut lines: Vec<HoldLine> = Vec::new();
    for (seat, category) in seats {
        match lines.iter_mut().find(|l| l.category_id == *category) {
            Some(line) => {
                line.quantity += 1;
                line.seat_ids.push(*seat);
            }
            None => lines.push(HoldLine { category_id: *category, quantity: 1, seat_ids: vec![*seat] }),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_ids_round_trip_and_reject_garbage() {
        let id = HoldId::new(uuid::Uuid::new_v4());
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<HoldId>().unwrap(), id);
        for bad in ["", "xyz", &text[..63], &format!("{}g", &text[..63])] {
            assert!(bad.parse::<HoldId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_ignore_seat_order() {
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert_eq!(Selection::Seats(vec![a, b]).fingerprint(), Selection::Seats(vec![b, a]).fingerprint());
        assert_ne!(Selection::Seats(vec![a]).fingerprint(), Selection::Seats(vec![b]).fingerprint());
    }

    #[test]
    fn seats_group_into_lines_by_category() {
        let (c1, c2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let (s1, s2, s3) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let lines = seat_lines(&[(s1, c1), (s2, c2), (s3, c1)]);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], HoldLine { category_id: c1, quantity: 2, seat_ids: vec![s1, s3] });
    }
}
