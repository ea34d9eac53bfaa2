//! Outbound mail, fed by the event log: who hears of each event, rendering, the outbox and
//! its transports. This slice sends acknowledgements of new tickets to a folder transport.

mod dkim;
mod error;
mod plan;
mod relay;
mod render;
mod transport;
mod worker;

pub use dkim::{dns_record, generate_key, sign, Algorithm};
pub use error::NotifierError;
pub use relay::{RelayConfig, RelayTransport, SendError};
pub use transport::{FolderTransport, Transport};
pub use worker::{Notifier, NotifierConfig};
