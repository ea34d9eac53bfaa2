//! Postdesk's persistence: the data model, the event log, consumer cursors and the
//! group-committed inbound spool. This is the only crate that names sled.

mod access;
mod audit;
mod bell;
mod blobs;
mod clock;
mod codec;
mod compaction;
mod deletion;
mod delivery;
mod directory;
mod dkim;
mod erasure;
mod error;
mod files;
mod grants;
mod held;
mod lookups;
mod mail_requests;
mod mailboxes;
mod message_ids;
mod model;
mod monitor_rules;
mod monitors;
mod org_deletion;
mod outbox;
mod retention;
#[cfg(test)]
mod scratch;
mod spool;
mod tickets;

pub use access::{LinkRefusal, LoginLink, Principal, WebSession};
pub use audit::{AuditAction, AuditEntry};
pub use bell::BellItem;
pub use clock::{Clock, OffsetFileClock, SystemClock};
pub use compaction::{compact, Compacted};
pub use deletion::{blocked_form, BlockedSender, Deleted};
pub use delivery::{DeliveryCommit, PipelineWrite, TicketTarget, MAX_PARTICIPANTS, MAX_TICKET_CC};
pub use directory::{hash_token, ApiTokenInfo};
pub use dkim::DkimKeyRecord;
pub use erasure::{Erased, ERASED_TEXT};
pub use error::StoreError;
pub use held::HeldAction;
pub use mail_requests::SignInRequest;
pub use mailboxes::import_source;
pub use message_ids::normalize_message_id;
pub use model::*;
pub use monitor_rules::{Monitor, MonitorKind, MAX_MONITOR_HOURS};
pub use monitors::{
    Crossings, WrittenTicket, AUTO_CLOSE_AUTHOR, MAX_AUTO_CLOSE_DAYS, MAX_MONITORS,
};
pub use outbox::{event_mail_key, MailFiles, OutboxItem, OutboxStatus, MONITOR_ALERT_KIND};
pub use tickets::{parse_day, NewTicket, TicketAction, TicketFilter};

use std::path::Path;

/// The file name in [`Store::delivered_folder`] of the mail with outbox key `key`: the key
/// made safe as a file name, `.eml`.
pub fn delivered_file_name(key: &str) -> String {
    let stem: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}.eml")
}

/// Handle to the data folder's database. Cheap to clone; all clones share one sled instance.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// Small records under prefixed keys (orgs, staff, tickets, events, indexes, spool
    /// markers), kept in one tree so a pipeline step commits in one transaction.
    state: sled::Tree,
    /// Raw inbound messages, byte-exact, keyed by inbound id.
    raw: sled::Tree,
    /// Attachment contents keyed by SHA-256, stored once.
    blobs: sled::Tree,
    /// Raw messages and attachments too large for sled's cache, as files.
    files: files::Files,
    /// Where outbound mail is written when no relay is set (`outbox/`).
    delivered: std::path::PathBuf,
    /// RCPT-time lookups answered from memory; one node's writes forget them (a second
    /// backend shared by several nodes must forget them on the others' writes too).
    lookups: std::sync::Arc<lookups::Lookups>,
    /// The erasure secret (see `erasure.rs`), read once: every RCPT's block lookup and every
    /// automatic mail's opt-out lookup hashes an address with it.
    erasure_key: std::sync::Arc<std::sync::OnceLock<[u8; 32]>>,
    /// Held while an organization's watched times change (monitors, auto-close), so two
    /// changes never interleave their index builds and drops.
    watch_changes: std::sync::Arc<std::sync::Mutex<()>>,
}

impl Store {
    /// Opens (or creates) the store in `dir`. sled holds an exclusive lock on it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        compaction::recover(dir)?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            // sled's default page cache is 1 GiB; mail is written once and read rarely. 32 MiB
            // measured 112 MB peak RSS serving 100k tickets (127 MB at 64 MiB).
            .cache_capacity(32 * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()?;
        let state = db.open_tree("state")?;
        let raw = db.open_tree("raw")?;
        let blobs = db.open_tree("blobs")?;
        let store = Store {
            db,
            state,
            raw,
            blobs,
            files: files::Files::open(dir)?,
            delivered: dir.join("outbox"),
            lookups: Default::default(),
            erasure_key: Default::default(),
            watch_changes: Default::default(),
        };
        store.ensure_recency_index()?;
        store.ensure_link_index()?;
        store.ensure_unread_counts()?;
        store.ensure_monitor_index()?;
        store.ensure_time_index()?;
        release_freed_memory();
        Ok(store)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The data folder's `outbox/`: where outbound mail is written as `.eml` files when no
    /// relay is set (see [`delivered_file_name`]).
    pub fn delivered_folder(&self) -> &Path {
        &self.delivered
    }

    /// Removes the file of the mail with outbox key `key` from the outbox folder, if it was
    /// written there (no relay): deleted and erased mail must not stay in the data folder.
    pub(crate) fn remove_delivered(&self, key: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.delivered.join(delivered_file_name(key))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// A 32-byte secret kept in the store, created on first use (e.g. the reply-token key).
    pub fn secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let key = format!("secret/{name}");
        if let Some(v) = self.state.get(&key)? {
            if let Ok(arr) = <[u8; 32]>::try_from(v.as_ref()) {
                return Ok(arr);
            }
        }
        let fresh: [u8; 32] = random_bytes();
        // compare_and_swap so two first users agree on one secret.
        match self
            .state
            .compare_and_swap(&key, None as Option<&[u8]>, Some(&fresh[..]))?
        {
            Ok(()) => {
                self.db.flush()?;
                Ok(fresh)
            }
            Err(cas) => cas
                .current
                .and_then(|v| <[u8; 32]>::try_from(v.as_ref()).ok())
                .ok_or(StoreError::Corrupt("secret".into())),
        }
    }

    /// Whether the store holds no organization yet (a first run).
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.state.scan_prefix("org/").next().is_none())
    }
}

/// sled's recovery builds a transient table of every page while it opens the store (about
/// 70 MB of a 170 MB peak on 100k tickets); glibc keeps those freed pages mapped, so a
/// server would carry them for its whole life. Hand them back once the store is open.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Random bytes from the operating system, for secrets and tokens.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}
