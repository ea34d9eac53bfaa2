//! The inbound spool: raw messages and their envelopes, written in batches with one flush,
//! and the markers of messages the pipeline has not finished yet.

use crate::codec::{decode, encode, key_num, num_key, read_counter, read_u64};
use crate::{Envelope, Store, StoreError};

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
        let mut ids = Vec::with_capacity(batch.len());
        for (i, (envelope, raw)) in batch.iter().enumerate() {
            let id = first + i as u64;
            self.raw.insert(id.to_be_bytes(), *raw)?;
            self.state
                .insert(num_key("envelope/", id), encode(*envelope)?)?;
            // The pending marker goes last: a marker always has its message.
            self.state.insert(num_key("pending/", id), &[])?;
            if let Some(origin) = &envelope.mailbox {
                self.note_imported(origin, !envelope.deliveries.is_empty(), raw)?;
            }
            ids.push(id);
        }
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

    pub fn envelope(&self, id: u64) -> Result<Option<Envelope>, StoreError> {
        self.state
            .get(num_key("envelope/", id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The original bytes of an inbound message.
    pub fn raw_message(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.raw.get(id.to_be_bytes())?.map(|v| v.to_vec()))
    }

    /// The inbound id of a stored message with this Message-ID (angle brackets optional).
    pub fn inbound_for_message_id(&self, message_id: &str) -> Result<Option<u64>, StoreError> {
        let mid = crate::tickets::normalize_message_id(message_id);
        Ok(self
            .state
            .get(format!("rawmid/{mid}"))?
            .and_then(|v| read_u64(&v)))
    }
}
