//! The gateway's typed error.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error(transparent)]
    Store(#[from] postdesk_store::StoreError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("DNS: {0}")]
    Dns(String),
    #[error("the spool writer has stopped")]
    SpoolClosed,
    #[error("IMAP: {0}")]
    Imap(String),
    #[error("configuration: {0}")]
    Config(String),
    /// The pipeline gave up on a message (past its time budget) and the work stopped.
    #[error("processing was given up")]
    Cancelled,
}

impl From<async_imap::error::Error> for GatewayError {
    fn from(e: async_imap::error::Error) -> Self {
        GatewayError::Imap(e.to_string())
    }
}
