//! Inbound mail: the SMTP/LMTP receiver and its checks, the IMAP mailbox importer, the
//! group-committing spool writer, and the pipeline that turns spooled messages into events.

mod admission;
mod checks;
mod config;
mod dmarc;
mod error;
mod imap;
mod limits;
mod mail_files;
mod pipeline;
mod smtp;
mod spool;
mod tls;

pub use config::GatewayConfig;
pub use dmarc::{Arrival, DmarcChecker, SenderCheck, TxtAnswers};
pub use error::GatewayError;
pub use imap::{start_sources, AfterImport, ImapSourceConfig, ImapTls};
pub use mail_files::{ImportProgress, ImportReport, MailFiles};
pub use pipeline::{DnsSource, Pipeline, Processor, DEFAULT_BUDGET};
pub use smtp::{serve, serve_connection, Mode};
pub use spool::{SpoolHandle, SpoolWriter};
pub use tls::load_tls;

use postdesk_store::Store;
use std::sync::Arc;

/// What every session shares.
pub struct Gateway {
    pub store: Store,
    pub config: GatewayConfig,
    pub spool: SpoolHandle,
    pub(crate) limits: limits::Limits,
    pub(crate) sessions: Arc<limits::Sessions>,
    pub(crate) data_budget: limits::DataBudget,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// The server's one shutdown signal: true (or its sender gone) stops the listeners and
    /// importers, and idle sessions answer 421 and close.
    pub(crate) stop: tokio::sync::watch::Receiver<bool>,
}

impl Gateway {
    pub fn new(
        store: Store,
        config: GatewayConfig,
        spool: SpoolHandle,
        tls: Option<tokio_rustls::TlsAcceptor>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<Gateway> {
        Arc::new(Gateway {
            limits: limits::Limits::new(&config),
            sessions: Arc::new(limits::Sessions::new(&config)),
            data_budget: limits::DataBudget::new(config.data_buffer_bytes),
            store,
            config,
            spool,
            tls,
            stop,
        })
    }
}
