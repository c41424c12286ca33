//! Generated protobuf types and gRPC stubs for the ticketing services and events.
//!
//! Module paths mirror proto packages: `ticketing.identity.v1` is
//! [`identity::v1`], `ticketing.events.v1` is [`events::v1`].

#![allow(clippy::all, clippy::pedantic, missing_docs)]

macro_rules! package {
    ($name:ident, $pkg:literal) => {
        #[doc = concat!("The `", $pkg, "` package.")]
        pub mod $name {
            /// Version 1 of the package.
            pub mod v1 {
                tonic::include_proto!($pkg);
            }
        }
    };
}

package!(common, "ticketing.common.v1");
package!(events, "ticketing.events.v1");
package!(identity, "ticketing.identity.v1");
package!(catalog, "ticketing.catalog.v1");
package!(inventory, "ticketing.inventory.v1");
package!(booking, "ticketing.booking.v1");
package!(payment, "ticketing.payment.v1");
package!(notification, "ticketing.notification.v1");
package!(audit, "ticketing.audit.v1");

/// The Kafka topics, one per publishing service, each carrying that service's
/// `ticketing.events.v1` envelopes; names before `kafka.topic_namespace` is applied.
pub mod topics {
    /// Identity's: accounts registered, emails to verify, roles changed.
    pub const IDENTITY: &str = "identity.events";
    /// Catalog's: events published, their sales opened, closed and cancelled.
    pub const CATALOG: &str = "catalog.events";
    /// Inventory's: holds claimed, confirmed, released and restocked.
    pub const INVENTORY: &str = "inventory.events";
    /// Booking's: bookings created, confirmed, cancelled.
    pub const BOOKING: &str = "booking.events";
    /// Payment's: payments and refunds settled.
    pub const PAYMENT: &str = "payment.events";
    /// Every service's privileged actions (`AuditRecord`), which identity keeps in its
    /// audit log: the one topic several services write.
    pub const AUDIT: &str = "audit.events";
}

/// Every message's fully qualified protobuf name, used as the envelope `type`.
pub use prost::Name;
