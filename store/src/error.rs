//! The store's typed error.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] crate::engine::EngineError),
    #[error("stored record could not be decoded ({0}); the data folder may be corrupt")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Exists(String),
    /// A record was written by someone else between a look at it and a change that
    /// depended on what was seen (the change was not made).
    #[error("changed meanwhile; try again")]
    Changed,
    /// A file of the data folder could not be read or written (large messages and
    /// attachments are kept as files).
    #[error("data folder: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e.into())
    }
}

impl From<crate::engine::TransactionError<StoreError>> for StoreError {
    fn from(e: crate::engine::TransactionError<StoreError>) -> Self {
        match e {
            crate::engine::TransactionError::Abort(e) => e,
            crate::engine::TransactionError::Storage(e) => StoreError::Db(e),
        }
    }
}
