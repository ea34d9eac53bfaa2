//! The desk as the edges hold it: the store and the injected clock. Every command and
//! query runs its store work off the async threads here, in one place.

use crate::error::{DeskError, DeskResult};
use postdesk_store::{Clock, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct Desk {
    pub(crate) store: Store,
    clock: Arc<dyn Clock>,
    /// When each staff member's activity was last written (see `staff_visit`).
    pub(crate) last_seen: Arc<Mutex<HashMap<String, OffsetDateTime>>>,
    /// Exports running at once (each holds a blocking thread while it streams).
    pub(crate) exports: Arc<tokio::sync::Semaphore>,
}

impl Desk {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Desk {
        Desk {
            store,
            clock,
            last_seen: Arc::default(),
            exports: Arc::new(tokio::sync::Semaphore::new(crate::exports::MAX_EXPORTS)),
        }
    }

    /// What every command stamps its events with (tests move it with `clock_offset_file`).
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The clock, for edges that expire things themselves (sessions, rate limits).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Runs `work` on the blocking pool: store reads and writes wait on the disk, and an
    /// async thread must not.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Desk) -> DeskResult<T> + Send + 'static,
    ) -> DeskResult<T> {
        let desk = self.clone();
        tokio::task::spawn_blocking(move || work(&desk))
            .await
            .map_err(|e| DeskError::Internal(format!("desk work stopped: {e}")))?
    }
}
