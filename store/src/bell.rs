//! The staff notification bell: one entry per (staff member, event) the notifier decides
//! they should hear of, written with the notifier's cursor move; unread until opened.

use crate::codec::{decode, encode, read_counter};
use crate::engine::ConflictableTransactionError::Abort;
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

/// Where a staff member's entries are: `bell/<staff>\0<event>`.
fn bell_prefix(staff: &str) -> String {
    format!("bell/{staff}\0")
}

pub(crate) fn bell_key(staff: &str, event: u64) -> Vec<u8> {
    let mut k = bell_prefix(staff).into_bytes();
    k.extend_from_slice(&event.to_be_bytes());
    k
}

pub(crate) fn encode_bell(item: &BellItem) -> Result<Vec<u8>, StoreError> {
    encode(item)
}

/// How many of a staff member's bell entries are unread, kept with every write so a page
/// header does not count them.
pub(crate) fn unread_key(staff: &str) -> String {
    format!("bellunread/{staff}")
}

impl Store {
    /// Everyone with bell entries (removed staff members' included): one seek per person,
    /// past all of their entries, not a read of every entry.
    pub(crate) fn bell_owners(&self) -> Result<Vec<String>, StoreError> {
        let mut owners = Vec::new();
        let mut from = b"bell/".to_vec();
        while let Some(kv) = self.state.range(from.as_slice()..).next() {
            let (k, _) = kv?;
            let Some(rest) = k.strip_prefix(b"bell/") else {
                break;
            };
            let Some(end) = rest.iter().position(|&b| b == 0) else {
                break;
            };
            let owner = String::from_utf8_lossy(&rest[..end]).into_owned();
            // The first key after all of theirs: the prefix's closing \0 raised to \x01.
            from = bell_prefix(&owner).into_bytes();
            if let Some(last) = from.last_mut() {
                *last = 1;
            }
            owners.push(owner);
        }
        Ok(owners)
    }

    /// Removes all of a staff member's entries and their unread count (they left).
    pub(crate) fn forget_bell(&self, staff: &str) -> Result<(), StoreError> {
        let mut batch = crate::engine::Batch::default();
        for k in self.state.scan_prefix(bell_prefix(staff)).keys() {
            batch.remove(k?);
        }
        batch.remove(unread_key(staff).as_bytes());
        self.state.apply_batch(batch)?;
        Ok(())
    }

    /// The newest `limit` entries of a staff member's bell, and how many entries in all
    /// are unread.
    pub fn bell(&self, staff: &str, limit: usize) -> Result<(Vec<BellItem>, usize), StoreError> {
        // The count first: entries and count commit together, so a count read before the
        // entries never names entries the list then lacks (read the other way round, a
        // commit between the two showed "7 unread" over an empty list).
        let unread = read_counter(self.state.get(unread_key(staff))?) as usize;
        let prefix = bell_prefix(staff);
        let items: Vec<BellItem> = self
            .state
            .scan_prefix(prefix.as_bytes())
            .values()
            .rev()
            .take(limit)
            .map(|v| decode(&v?))
            .collect::<Result<_, StoreError>>()?;
        Ok((items, unread))
    }

    /// Stores from before the unread count get it once, counted from their entries.
    pub(crate) fn ensure_unread_counts(&self) -> Result<(), StoreError> {
        const DONE: &str = "migrated/bell-unread";
        if self.state.get(DONE)?.is_some() {
            return Ok(());
        }
        let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
        for item in self.state.scan_prefix("bell/") {
            let item: BellItem = decode(&item?.1)?;
            if !item.read {
                *counts.entry(item.staff).or_default() += 1;
            }
        }
        let mut batch = crate::engine::Batch::default();
        for (staff, n) in counts {
            batch.insert(unread_key(&staff).as_bytes(), &n.to_be_bytes());
        }
        batch.insert(DONE, &[]);
        self.state.apply_batch(batch)?;
        self.flush()
    }

    /// Marks one entry read; returns it (for its ticket), if it is this staff member's.
    pub fn open_bell_item(&self, staff: &str, event: u64) -> Result<Option<BellItem>, StoreError> {
        let key = bell_key(staff, event);
        let counter = unread_key(staff);
        let opened = self
            .state
            .transaction(|tx| {
                let Some(v) = tx.get(&key)? else {
                    return Ok(None);
                };
                let mut item: BellItem = decode(&v).map_err(Abort)?;
                if !item.read {
                    item.read = true;
                    tx.insert(key.as_slice(), encode(&item).map_err(Abort)?)?;
                    let n = read_counter(tx.get(counter.as_bytes())?).saturating_sub(1);
                    tx.insert(counter.as_bytes(), &n.to_be_bytes())?;
                }
                Ok(Some(item))
            })
            .map_err(StoreError::from)?;
        Ok(opened)
    }
}
