//! Sign-in quotas that every node sharing a store spends together (see the store's
//! `rates.rs`); a node alone keeps them in memory (the web crate's limits).

use crate::{Desk, DeskResult};
use std::time::Duration;

impl Desk {
    /// Whether this desk's store is shared by several nodes (PostgreSQL).
    pub fn store_is_shared(&self) -> bool {
        self.store.is_shared()
    }

    /// Spends one of `kind`'s quota for `key` (`burst` at once, then one per `every`),
    /// counted across every node; `Err(wait)` when none is left.
    pub async fn spend_quota(
        &self,
        kind: &'static str,
        key: String,
        every: Duration,
        burst: u32,
    ) -> DeskResult<Result<(), Duration>> {
        self.run(move |desk| Ok(desk.store.spend_rate(kind, &key, every, burst)?))
            .await
    }
}
