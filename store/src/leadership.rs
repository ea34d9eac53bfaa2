//! Jobs one node at a time runs (the outbox, monitors and retention, each IMAP source): on
//! a shared store the node holding the job's PostgreSQL advisory lock; alone, always this.

use crate::engine::Db;
use crate::{Store, StoreError};

/// This node runs a job while it keeps this; the lock goes with the process (or its
/// database session), so another node takes the job when this one dies.
pub struct Leadership {
    lease: Option<crate::engine::PgLease>,
}

impl Leadership {
    /// Whether the lock is still this node's: false once its database session ended
    /// (the database restarted, the network failed). The job then stops and asks again.
    pub fn still_held(&self) -> bool {
        self.lease.as_ref().is_none_or(|l| l.held())
    }
}

impl Store {
    /// Leads job `name` if no other node does; `None` while another node leads it.
    pub fn lead(&self, name: &str) -> Result<Option<Leadership>, StoreError> {
        match &self.db {
            Db::Sled(_) => Ok(Some(Leadership { lease: None })),
            Db::Pg(pg) => Ok(pg
                .try_lock(name, false)?
                .map(|lease| Leadership { lease: Some(lease) })),
        }
    }

    /// Runs `f` once no other thread of this process nor node of this store runs work
    /// named `name`: for changes that must not interleave across nodes.
    pub fn exclusively<T, E: From<StoreError>>(
        &self,
        name: &str,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        // Threads of this process queue here, so a node holds at most one session waiting
        // for the advisory lock of a name (a burst of requests opens no burst of sessions).
        let named = self
            .exclusive
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_string())
            .or_default()
            .clone();
        // The lock guards no data: one poisoned by a panic still orders the next.
        let _one_at_a_time = named
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Other nodes: the database's advisory lock, on a session of its own.
        let _across_nodes = match &self.db {
            Db::Sled(_) => None,
            Db::Pg(pg) => pg.try_lock(name, true).map_err(StoreError::from)?,
        };
        f()
    }
}
