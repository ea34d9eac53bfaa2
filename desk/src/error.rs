//! What a desk command or query answers when it cannot be done: each edge maps these to its
//! own answer (an HTTP status, a page, a mail back to the sender) in one place.

use postdesk_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// Missing, or not visible to the caller: the same answer, so numbers do not leak.
    #[error("{0}")]
    NotFound(String),
    /// Visible, but the caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request itself is wrong (a bad field value, an empty text).
    #[error("{0}")]
    Invalid(String),
    /// Understood, but the thing's state does not allow it (decided already).
    #[error("{0}")]
    Conflict(String),
    /// Too much of this is running already; the caller may try again shortly.
    #[error("{0}")]
    Busy(String),
    /// The store failed (or the work was stopped); the caller sees "internal error", the
    /// log has the cause.
    #[error("internal error")]
    Internal(String),
}

impl DeskError {
    /// The cause behind an internal error, for the log.
    pub fn cause(&self) -> Option<&str> {
        match self {
            DeskError::Internal(cause) => Some(cause),
            _ => None,
        }
    }
}

impl From<StoreError> for DeskError {
    fn from(e: StoreError) -> DeskError {
        DeskError::Internal(e.to_string())
    }
}

pub type DeskResult<T> = Result<T, DeskError>;
