//! On a store several nodes share: which node works on an inbound message, claimed before
//! it is planned and released by the commit of its decision, so each is threaded once.

use crate::codec::{decode, encode, num_key};
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a claim holds without its commit: a node that died lets its messages go to
/// the others after this (at once to itself, restarted: a claim names its node).
const LEASE_SECS: u64 = 60;

pub(crate) fn inbound_claim_key(id: u64) -> Vec<u8> {
    num_key("claim/in/", id)
}

#[derive(Serialize, Deserialize)]
struct Claim {
    node: String,
    /// Seconds since the epoch on the claiming node's clock.
    until: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Takes inbound message `id` for this node, unless another node holds it and its
    /// lease runs; whether this node may plan it. Always yes on a store of one node.
    pub fn claim_inbound(&self, id: u64) -> Result<bool, StoreError> {
        if !self.is_shared() {
            return Ok(true);
        }
        let key = inbound_claim_key(id);
        let now = now_secs();
        let mine = encode(&Claim {
            node: self.node.to_string(),
            until: now + LEASE_SECS,
        })?;
        self.state
            .transaction(|tx| {
                // Planned already (a commit removed the claim and the marker): not again.
                if tx.get(num_key("pending/", id))?.is_none() {
                    return Ok(false);
                }
                if let Some(held) = tx.get(&key)? {
                    let held: Claim = decode(&held)
                        .map_err(crate::engine::ConflictableTransactionError::Abort)?;
                    if held.node != *self.node && held.until > now {
                        return Ok(false);
                    }
                }
                tx.insert(&key, mine.clone())?;
                Ok(true)
            })
            .map_err(StoreError::from)
    }

    /// This node's name among those sharing the store (its data folder's `node-id`).
    pub fn node(&self) -> &str {
        &self.node
    }
}
