//! The data model as the edges name it: the store's types, re-exported so that web pages,
//! the API and the binary depend on the desk alone. Only the binary holds a `Store`, to
//! open it and hand it to the desk, the gateway and the notifier; the edges never call it.

pub use postdesk_store::{
    compact, describe_database_url, guest_request_text, migrate_postgres, parse_day, random_bytes,
    BellItem, BlockedSender, Change, Clock, Compacted, DkimKeyRecord, Erased, Event, EventKind,
    FieldMode, HeldOutcome, Leadership, LinkRefusal, Monitor, MonitorKind, OffsetFileClock, Org,
    PortalMode, Principal, Retention, Role, Staff, Status, Store, SystemClock, Ticket,
    TicketFilter, TicketType, Visibility, WebSession, MAX_MONITORS, POSTGRES_SCHEMA_VERSION,
};
