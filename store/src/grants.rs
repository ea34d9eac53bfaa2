//! Addresses staff let write into a ticket without being its requester or a CC: a reply
//! address handed out through the API for someone else (a supplier, a colleague). A reply
//! token proves who writes; this says they may.

use crate::{Store, StoreError};

fn grant_key(ticket: u64, email: &str) -> String {
    format!("grant/{ticket}/{}", email.trim().to_ascii_lowercase())
}

impl Store {
    /// Lets `email` write into `ticket` as a participant.
    pub fn grant_reply(&self, ticket: u64, email: &str) -> Result<(), StoreError> {
        self.state.insert(grant_key(ticket, email), &[])?;
        self.flush()
    }

    /// Whether staff let `email` write into `ticket`.
    pub fn reply_granted(&self, ticket: u64, email: &str) -> Result<bool, StoreError> {
        Ok(self.state.contains_key(grant_key(ticket, email))?)
    }
}
