//! On a store several nodes share: which node works on an inbound message (claimed before
//! it is planned, released by the commit of its decision: each is threaded once) or sends
//! an outbound mail (claimed before it goes, released when its outcome is recorded: a node
//! that took over the outbox does not send what another is still sending).

use crate::codec::{decode, encode, num_key};
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a claim holds without its commit: a node that died lets its messages go to
/// the others after this (at once to itself, restarted: a claim names its node).
const LEASE_SECS: u64 = 60;

/// An outbound mail's claim outlasts any relay's timeouts: one still being sent by a node
/// that lost the outbox is not sent by another meanwhile.
const SEND_LEASE_SECS: u64 = 600;

pub(crate) fn inbound_claim_key(id: u64) -> Vec<u8> {
    num_key("claim/in/", id)
}

pub(crate) fn outbound_claim_key(key: &str) -> Vec<u8> {
    format!("claim/out/{key}").into_bytes()
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
        // Planned already (a commit removed the claim and the marker): not again.
        self.claim(inbound_claim_key(id), &num_key("pending/", id), LEASE_SECS)
    }

    /// Takes outbound mail `key` for this node to send now, unless another node holds
    /// it; always yes on a store of one node. Its recorded outcome releases it.
    pub fn claim_outbound(&self, key: &str) -> Result<bool, StoreError> {
        let pending = crate::outbox::pending_key(key).into_bytes();
        self.claim(outbound_claim_key(key), &pending, SEND_LEASE_SECS)
    }

    /// Claims `key` for this node for `lease` seconds while `still` exists; whether it did.
    fn claim(&self, key: Vec<u8>, still: &[u8], lease: u64) -> Result<bool, StoreError> {
        if !self.is_shared() {
            return Ok(true);
        }
        let now = now_secs();
        let mine = encode(&Claim {
            node: self.node.to_string(),
            until: now + lease,
        })?;
        self.state
            .transaction(|tx| {
                if tx.get(still)?.is_none() {
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

    /// Forgets the claims whose lease ran out (their node died, or what they claimed was
    /// deleted meanwhile); how many.
    pub fn sweep_claims(&self) -> Result<u64, StoreError> {
        let now = now_secs();
        let mut batch = crate::engine::Batch::default();
        for kv in self.state.scan_prefix("claim/") {
            let (k, v) = kv?;
            if decode::<Claim>(&v).map_or(true, |c| c.until <= now) {
                batch.remove(k);
            }
        }
        let n = batch.len() as u64;
        self.state.apply_batch(batch)?;
        Ok(n)
    }

    /// This node's name among those sharing the store (its data folder's `node-id`).
    pub fn node(&self) -> &str {
        &self.node
    }
}
