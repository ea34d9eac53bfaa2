//! Retention in the store: dropping the originals of messages older than their
//! organizations keep them (the tickets' text stays), and the day each daily step last
//! finished.

use crate::codec::{decode, key_num, num_key};
use crate::{Envelope, Store, StoreError};
use std::collections::HashMap;
use time::{Date, OffsetDateTime};

impl Store {
    /// Drops the originals of messages received before the cutoff of every organization
    /// they went to (an organization without a cutoff keeps its mail's originals); those
    /// still waiting for the pipeline are kept. Returns how many were dropped, per
    /// organization they went to.
    pub fn drop_originals(
        &self,
        cutoffs: &HashMap<String, OffsetDateTime>,
    ) -> Result<HashMap<String, usize>, StoreError> {
        let mut dropped: HashMap<String, usize> = HashMap::new();
        if cutoffs.is_empty() {
            return Ok(dropped);
        }
        for kv in self.state.scan_prefix("envelope/") {
            let (k, v) = kv?;
            let id = key_num(&k).ok_or_else(|| StoreError::Corrupt("envelope key".into()))?;
            let envelope: Envelope = decode(&v)?;
            let orgs: Vec<&str> = envelope.orgs().collect();
            let expired = !orgs.is_empty()
                && orgs
                    .iter()
                    .all(|o| cutoffs.get(*o).is_some_and(|c| envelope.received_at < *c));
            if !expired || self.state.contains_key(num_key("pending/", id))? {
                continue;
            }
            if self.drop_original(id)? {
                for o in orgs {
                    *dropped.entry(o.to_string()).or_default() += 1;
                }
            }
        }
        self.flush()?;
        Ok(dropped)
    }

    /// The day (UTC) a daily step of retention (`step`) last finished, if it ever did.
    pub fn retention_day(&self, step: &str) -> Result<Option<Date>, StoreError> {
        Ok(self
            .state
            .get(format!("retention/{step}"))?
            .and_then(|v| crate::parse_day(&String::from_utf8_lossy(&v))))
    }

    pub fn set_retention_day(&self, step: &str, day: Date) -> Result<(), StoreError> {
        self.state
            .insert(format!("retention/{step}"), day.to_string().as_bytes())?;
        Ok(())
    }
}
