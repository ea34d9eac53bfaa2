//! The staff notification bell: one entry per (staff member, event) the notifier decides
//! they should hear of, written with the notifier's cursor move; unread until opened.

use crate::codec::{decode, encode};
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BellItem {
    pub staff: String,
    pub event: u64,
    pub ticket: u64,
    /// One line: who did what on which ticket.
    pub text: String,
    pub read: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

pub(crate) fn bell_key(staff: &str, event: u64) -> Vec<u8> {
    let mut k = format!("bell/{staff}\0").into_bytes();
    k.extend_from_slice(&event.to_be_bytes());
    k
}

pub(crate) fn encode_bell(item: &BellItem) -> Result<Vec<u8>, StoreError> {
    encode(item)
}

impl Store {
    /// The newest `limit` entries of a staff member's bell, and how many of those are unread.
    pub fn bell(&self, staff: &str, limit: usize) -> Result<(Vec<BellItem>, usize), StoreError> {
        let prefix = format!("bell/{staff}\0");
        let items: Vec<BellItem> = self
            .state
            .scan_prefix(prefix.as_bytes())
            .values()
            .rev()
            .take(limit)
            .map(|v| decode(&v?))
            .collect::<Result<_, StoreError>>()?;
        let unread = items.iter().filter(|i| !i.read).count();
        Ok((items, unread))
    }

    /// Marks one entry read; returns it (for its ticket), if it is this staff member's.
    pub fn open_bell_item(&self, staff: &str, event: u64) -> Result<Option<BellItem>, StoreError> {
        let key = bell_key(staff, event);
        let Some(v) = self.state.get(&key)? else {
            return Ok(None);
        };
        let mut item: BellItem = decode(&v)?;
        if !item.read {
            item.read = true;
            self.state.insert(key, encode(&item)?)?;
        }
        Ok(Some(item))
    }
}
