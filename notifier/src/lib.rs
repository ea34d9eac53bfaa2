//! Outbound mail: who hears of each event (fed by the event log), sign-in link mails,
//! rendering, DKIM signing, the outbox and its transports (relay or folder), and the
//! monitors' timer.

mod access_mail;
mod attachments;
mod dkim;
mod error;
mod monitors;
mod plan;
mod relay;
mod render;
mod transport;
mod worker;

pub use dkim::{dns_record, new_key_record, sign, Algorithm};
pub use error::NotifierError;
pub use monitors::run_monitors;
pub use relay::{RelayConfig, RelayTls, RelayTransport, SendError};
pub use transport::{FolderTransport, Transport};
pub use worker::{Notifier, NotifierConfig};
