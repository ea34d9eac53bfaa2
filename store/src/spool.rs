//! The inbound spool: raw messages and their envelopes, written in batches with one flush,
//! and the markers of messages the pipeline has not finished yet.

use crate::codec::{decode, encode, key_num, num_key, read_counter, read_u64};
use crate::engine::Batch;
use crate::files::Kind;
use crate::{Envelope, Store, StoreError};
use std::collections::BTreeMap;

const NEXT_INBOUND: &str = "counter/inbound";

impl Store {
    /// Stores a batch of accepted messages and flushes once: when this returns `Ok`, every
    /// message in the batch is durable and may be acknowledged. Returns their inbound ids.
    pub fn spool_batch(&self, batch: &[(&Envelope, &[u8])]) -> Result<Vec<u64>, StoreError> {
        let first = self
            .state
            .update_and_fetch(NEXT_INBOUND, |old| {
                let n = read_counter(old) + batch.len() as u64;
                Some(n.to_be_bytes().to_vec())
            })?
            .map(|v| read_counter(Some(v)))
            .unwrap_or(0)
            + 1
            - batch.len() as u64;
        // Large messages first, as synced files: sled may write anything below to disk
        // before the flush, and a pending marker must never point at a missing message.
        let mut files = false;
        for (i, (_, raw)) in batch.iter().enumerate() {
            if raw.len() > self.large() {
                let id = first + i as u64;
                self.files.write(Kind::Raw, &id.to_string(), raw)?;
                files = true;
            }
        }
        if files {
            self.files.sync_folder(Kind::Raw)?;
        }
        let mut ids = Vec::with_capacity(batch.len());
        let (mut originals, mut records) = (Batch::default(), Batch::default());
        let mut cursors = BTreeMap::new();
        for (i, (envelope, raw)) in batch.iter().enumerate() {
            let id = first + i as u64;
            if raw.len() <= self.large() {
                originals.insert(&id.to_be_bytes()[..], *raw);
            }
            records.insert(num_key("envelope/", id), encode(*envelope)?);
            records.insert(num_key("pending/", id), &[][..]);
            if let Some(origin) = &envelope.mailbox {
                let accepted = !envelope.deliveries.is_empty();
                self.note_imported(&mut records, &mut cursors, origin, accepted, raw)?;
            }
            ids.push(id);
        }
        Store::cursor_writes(&mut records, cursors)?;
        // The originals' batch goes first: a pending marker always has its message. Each
        // batch is atomic (on PostgreSQL the two are one transaction).
        self.db
            .apply_batches(vec![(&self.raw, originals), (&self.state, records)])?;
        self.db.flush()?;
        Ok(ids)
    }

    /// Inbound ids the pipeline has not completed, oldest first.
    pub fn pending_inbound(&self) -> Result<Vec<u64>, StoreError> {
        self.state
            .scan_prefix("pending/")
            .keys()
            .map(|k| {
                let k = k?;
                key_num(&k).ok_or_else(|| StoreError::Corrupt("pending key".into()))
            })
            .collect()
    }

    /// How many accepted messages wait for the pipeline, and when the oldest came.
    pub fn pipeline_backlog(&self) -> Result<Backlog, StoreError> {
        let count = self.state.count_prefix("pending/")?;
        let oldest = match self.state.scan_prefix("pending/").keys().next() {
            Some(k) => {
                let id = key_num(&k?).ok_or_else(|| StoreError::Corrupt("pending key".into()))?;
                self.envelope(id)?.map(|e| e.received_at)
            }
            None => None,
        };
        Ok(Backlog { count, oldest })
    }

    pub fn envelope(&self, id: u64) -> Result<Option<Envelope>, StoreError> {
        self.state
            .get(num_key("envelope/", id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Deletes the original of inbound message `id` (in sled or as a file); whether there
    /// was one.
    pub(crate) fn drop_original(&self, id: u64) -> Result<bool, StoreError> {
        let name = id.to_string();
        let held =
            self.raw.remove(id.to_be_bytes())?.is_some() | self.files.exists(Kind::Raw, &name);
        self.files.remove(Kind::Raw, &name)?;
        Ok(held)
    }

    /// The original bytes of an inbound message.
    pub fn raw_message(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.raw.get_vec(id.to_be_bytes())? {
            return Ok(Some(v));
        }
        Ok(self.files.read(Kind::Raw, &id.to_string())?)
    }
}

/// What waits for the pipeline (see [`Store::pipeline_backlog`]).
#[derive(Debug, Clone, Copy)]
pub struct Backlog {
    pub count: u64,
    pub oldest: Option<time::OffsetDateTime>,
}

/// The message the pipeline is planning: written before it starts on one, so that after a
/// crash the next start knows which message was in hand (see [`Store::crash_suspect`]).
/// On a store shared by several nodes each node has its own (`pipeline/planning/NODE`).
const PLANNING: &str = "pipeline/planning";

/// In the transaction that records the last decision about inbound message `id`: it is
/// no longer pending, nor in hand (one write fewer per message than clearing it after),
/// nor claimed by a node (a shared store; there each node's pass clears its own marker).
pub(crate) fn finish_inbound(
    tx: &crate::engine::TransactionalTree,
    id: u64,
) -> crate::engine::ConflictableTransactionResult<(), StoreError> {
    tx.remove(num_key("pending/", id))?;
    if tx.is_shared() {
        tx.remove(crate::claims::inbound_claim_key(id))?;
    } else if tx.get(PLANNING)?.and_then(|v| read_u64(&v)) == Some(id) {
        tx.remove(PLANNING)?;
    }
    Ok(())
}

impl Store {
    fn planning_key(&self) -> String {
        if self.is_shared() {
            format!("{PLANNING}/{}", self.node)
        } else {
            PLANNING.into()
        }
    }

    /// Notes that the pipeline starts on inbound message `id`; `durable` flushes it first
    /// (after an unclean stop, until the backlog is through), so a message that kills the
    /// process is known on the next start even if it does so at once.
    pub fn note_planning(&self, id: u64, durable: bool) -> Result<(), StoreError> {
        self.state.insert(self.planning_key(), &id.to_be_bytes())?;
        if durable {
            self.db.flush()?;
        }
        Ok(())
    }

    /// The pipeline has nothing in hand (a pass ended, or the server stops cleanly). A
    /// read when the commit of the message in hand cleared it already (the usual case).
    pub fn clear_planning(&self) -> Result<(), StoreError> {
        let key = self.planning_key();
        if self.state.contains_key(&key)? {
            self.state.remove(key)?;
        }
        Ok(())
    }

    /// On start: the message the pipeline had in hand when the last run ended without
    /// clearing it (a crash), and how many runs have now ended while it was in hand,
    /// counted durably. `None` after a clean stop.
    pub fn crash_suspect(&self) -> Result<Option<(u64, u32)>, StoreError> {
        let Some(id) = self
            .state
            .get(self.planning_key())?
            .and_then(|v| read_u64(&v))
        else {
            return Ok(None);
        };
        // Decided since (a shared store's commit leaves the node's marker to its pass).
        if !self.state.contains_key(num_key("pending/", id))? {
            self.clear_planning()?;
            return Ok(None);
        }
        let key = num_key("pipeline/crashes/", id);
        let crashes = u32::try_from(read_counter(self.state.get(&key)?) + 1).unwrap_or(u32::MAX);
        self.state.insert(key, &u64::from(crashes).to_be_bytes())?;
        self.db.flush()?;
        Ok(Some((id, crashes)))
    }
}
