//! The notifier's typed error.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum NotifierError {
    #[error(transparent)]
    Store(#[from] postdesk_store::StoreError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
    #[error("DKIM: {0}")]
    Dkim(String),
    #[error("rendering failed: {0}")]
    Render(String),
}
