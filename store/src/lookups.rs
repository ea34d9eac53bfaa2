//! The directory lookups every SMTP RCPT makes (an address's organization, whether a sender
//! is blocked), answered from memory: a store read waits while a pipeline commit holds
//! sled's write lock, which cost the c=1 ingest ~9%. Every write to them forgets it all.
//! Not on a store several nodes share: another node's writes would not forget it.

use crate::Org;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Entries kept per kind before all are dropped: RCPT addresses and MAIL FROM senders come
/// from strangers, so what they can make us remember stays bounded.
const MAX_ENTRIES: usize = 4096;

/// Answers remembered since the last directory or blocklist write. A lookup that missed
/// reads the store and keeps its answer only if no write forgot the cache meanwhile
/// (`generation` unchanged), so an answer read before a write is never kept after it.
#[derive(Default)]
pub(crate) struct Lookups {
    entries: Mutex<Entries>,
    /// Off: every lookup reads the store.
    off: bool,
}

#[derive(Default)]
struct Entries {
    generation: u64,
    /// By base address (no plus part, lowercase).
    orgs: HashMap<String, Option<Org>>,
    /// By `block/` key.
    blocked: HashMap<String, bool>,
}

impl Lookups {
    /// Lookups that remember nothing (a store several nodes share).
    pub(crate) fn off() -> Lookups {
        Lookups {
            off: true,
            ..Default::default()
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // Entries are plain maps: a panic elsewhere cannot leave them half-changed.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The generation to pass to a `keep_*` after reading the store.
    pub(crate) fn generation(&self) -> u64 {
        self.entries().generation
    }

    pub(crate) fn org(&self, base: &str) -> Option<Option<Org>> {
        self.entries().orgs.get(base).cloned()
    }

    pub(crate) fn keep_org(&self, generation: u64, base: &str, org: &Option<Org>) {
        let mut e = self.entries();
        if e.generation == generation && !self.off {
            if e.orgs.len() >= MAX_ENTRIES {
                e.orgs.clear();
            }
            e.orgs.insert(base.to_string(), org.clone());
        }
    }

    pub(crate) fn blocked(&self, key: &str) -> Option<bool> {
        self.entries().blocked.get(key).copied()
    }

    pub(crate) fn keep_blocked(&self, generation: u64, key: &str, blocked: bool) {
        let mut e = self.entries();
        if e.generation == generation && !self.off {
            if e.blocked.len() >= MAX_ENTRIES {
                e.blocked.clear();
            }
            e.blocked.insert(key.to_string(), blocked);
        }
    }

    /// Called after every write to organizations, their addresses or a blocklist.
    pub(crate) fn forget(&self) {
        let mut e = self.entries();
        e.generation += 1;
        e.orgs.clear();
        e.blocked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_read_before_a_write_is_not_kept() {
        let l = Lookups::default();
        let before = l.generation();
        l.forget();
        l.keep_blocked(before, "block/acme/a@x.test", false);
        assert_eq!(l.blocked("block/acme/a@x.test"), None);
        l.keep_blocked(l.generation(), "block/acme/a@x.test", true);
        assert_eq!(l.blocked("block/acme/a@x.test"), Some(true));
    }

    #[test]
    fn strangers_cannot_make_it_grow_without_bound() {
        let l = Lookups::default();
        for i in 0..3 * MAX_ENTRIES {
            l.keep_org(l.generation(), &format!("x{i}@example.test"), &None);
        }
        assert!(l.entries().orgs.len() <= MAX_ENTRIES);
    }

    #[test]
    fn lookups_that_are_off_remember_nothing() {
        let l = Lookups::off();
        l.keep_blocked(l.generation(), "block/acme/a@x.test", true);
        l.keep_org(l.generation(), "acme@x.test", &None);
        assert_eq!(l.blocked("block/acme/a@x.test"), None);
        assert_eq!(l.org("acme@x.test"), None);
    }
}
