//! Postdesk's persistence: the data model, the event log, consumer cursors and the
//! group-committed inbound spool. This is the only crate that names sled.

mod access;
mod audit;
mod bell;
mod blobs;
mod claims;
mod clock;
mod codec;
mod compaction;
mod deletion;
mod delivery;
mod directory;
mod dkim;
mod engine;
mod erasure;
mod error;
mod files;
mod grants;
mod held;
mod leadership;
mod lookups;
mod mail_requests;
mod mailboxes;
mod message_ids;
mod model;
mod monitor_rules;
mod monitors;
mod org_deletion;
mod outbox;
mod rates;
mod retention;
#[cfg(test)]
mod scratch;
mod spool;
mod store_migration;
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
pub use engine::EngineError;
pub use erasure::{Erased, ERASED_TEXT};
pub use error::StoreError;
pub use held::HeldAction;
pub use leadership::Leadership;
pub use mail_requests::SignInRequest;
pub use mailboxes::import_source;
pub use message_ids::normalize_message_id;
pub use model::*;
pub use monitor_rules::{Monitor, MonitorKind, MAX_MONITOR_HOURS};
pub use monitors::{
    Crossings, WrittenTicket, AUTO_CLOSE_AUTHOR, MAX_AUTO_CLOSE_DAYS, MAX_MONITORS,
};
pub use outbox::{event_mail_key, MailFiles, OutboxItem, OutboxStatus, MONITOR_ALERT_KIND};
pub use spool::Backlog;
pub use store_migration::Moved;
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

/// A PostgreSQL connection pool's use: connections open, of them idle, the most it
/// opens, and requests waiting for one.
#[derive(Debug, Clone, Copy)]
pub struct PoolUse {
    pub size: usize,
    pub idle: usize,
    pub max: usize,
    pub waiting: usize,
}

/// Handle to the store's database (sled in the data folder, or PostgreSQL). Cheap to
/// clone; all clones share one database handle.
#[derive(Clone)]
pub struct Store {
    db: engine::Db,
    /// Small records under prefixed keys (orgs, staff, tickets, events, indexes, spool
    /// markers), kept in one tree so a pipeline step commits in one transaction.
    state: engine::Tree,
    /// Raw inbound messages, byte-exact, keyed by inbound id.
    raw: engine::Tree,
    /// Attachment contents keyed by SHA-256, stored once.
    blobs: engine::Tree,
    /// Raw messages and attachments too large for sled's cache, as files (with sled only:
    /// several nodes share no folder, and PostgreSQL keeps large values out of its cache).
    files: files::Files,
    /// Where outbound mail is written when no relay is set (`outbox/`).
    delivered: std::path::PathBuf,
    /// RCPT-time lookups answered from memory; one node's writes forget them (a second
    /// backend shared by several nodes must forget them on the others' writes too).
    lookups: std::sync::Arc<lookups::Lookups>,
    /// The erasure secret (see `erasure.rs`), read once: every RCPT's block lookup and every
    /// automatic mail's opt-out lookup hashes an address with it.
    erasure_key: std::sync::Arc<std::sync::OnceLock<[u8; 32]>>,
    /// Held while a change that must not interleave with another runs (an organization's
    /// watched times: monitors, auto-close); see `leadership.rs` for several nodes.
    exclusive: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<std::sync::Mutex<()>>>>,
    >,
    /// This node's name among those sharing a PostgreSQL store (`node-id` in its data
    /// folder); "local" with sled.
    node: std::sync::Arc<str>,
    /// On PostgreSQL, the lock that says this node's name is in use: two nodes given one
    /// data folder's name (a copied folder, a shared volume) would take each other's
    /// claims for their own.
    _node_lock: std::sync::Arc<Option<engine::PgLease>>,
}

impl Store {
    /// Opens (or creates) the store in `dir`. sled holds an exclusive lock on it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        if dir.join(store_migration::MOVED).exists() {
            return Err(StoreError::Invalid(format!(
                "this data folder's store was already moved to PostgreSQL: set database_url \
                 to that database (or remove {} to use this sled store again)",
                dir.join(store_migration::MOVED).display()
            )));
        }
        compaction::recover(dir)?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            // sled's default page cache is 1 GiB; mail is written once and read rarely. 32 MiB
            // measured 112 MB peak RSS serving 100k tickets (127 MB at 64 MiB).
            .cache_capacity(32 * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()?;
        let store = Store::on(engine::Db::Sled(db), dir)?;
        release_freed_memory();
        Ok(store)
    }

    /// Opens the store in the PostgreSQL database at `url` (migrating its schema first);
    /// `dir` keeps only what is this node's own (the outbox folder when no relay is set).
    pub fn open_postgres(dir: &Path, url: &str) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let db = engine::Db::Pg(engine::Pg::connect(url)?);
        let marks = db.open_tree(store_migration::MARKS)?;
        if marks.get("source")?.is_some() && marks.get("done")?.is_none() {
            return Err(StoreError::Invalid(
                "a move of a sled store into this database (postdesk migrate-store) has not \
                 finished: run it again, or give an empty database"
                    .into(),
            ));
        }
        Store::on(db, dir)
    }

    fn on(db: engine::Db, dir: &Path) -> Result<Store, StoreError> {
        let shared = db.is_postgres();
        let node = if shared {
            node_id(dir)?
        } else {
            "local".into()
        };
        let node_lock = match &db {
            engine::Db::Pg(pg) => Some(node_lock(pg, &node, dir)?),
            engine::Db::Sled(_) => None,
        };
        let store = Store {
            state: db.open_tree("state")?,
            raw: db.open_tree("raw")?,
            blobs: db.open_tree("blobs")?,
            db,
            files: files::Files::open(dir)?,
            delivered: dir.join("outbox"),
            lookups: std::sync::Arc::new(if shared {
                lookups::Lookups::off()
            } else {
                lookups::Lookups::default()
            }),
            erasure_key: Default::default(),
            exclusive: Default::default(),
            node,
            _node_lock: std::sync::Arc::new(node_lock),
        };
        store.ensure_recency_index()?;
        store.ensure_link_index()?;
        store.ensure_unread_counts()?;
        store.ensure_monitor_index()?;
        store.ensure_time_index()?;
        Ok(store)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The use of the PostgreSQL connection pool (none with sled).
    pub fn pool_use(&self) -> Option<PoolUse> {
        self.db
            .pool_use()
            .map(|(size, idle, max, waiting)| PoolUse {
                size,
                idle,
                max,
                waiting,
            })
    }

    /// Values larger than this are files (sled only: PostgreSQL keeps every value, and
    /// nodes share no folder).
    pub(crate) fn large(&self) -> usize {
        if self.is_shared() {
            usize::MAX
        } else {
            files::LARGE
        }
    }

    /// Whether the store is in PostgreSQL (shared by any number of nodes).
    pub fn is_shared(&self) -> bool {
        self.db.is_postgres()
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
        match self.state.compare_and_swap(&key, None, Some(&fresh[..]))? {
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

/// The lock on node `node`'s name. The session of a process that just ended (a restart)
/// may hold it for a moment yet: asked again for a few seconds.
fn node_lock(pg: &engine::Pg, node: &str, dir: &Path) -> Result<engine::PgLease, StoreError> {
    for _ in 0..50 {
        if let Some(lease) = pg.try_lock(&format!("node/{node}"), false)? {
            return Ok(lease);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(StoreError::Invalid(format!(
        "another node runs with this node's name ({node}, in {}): give each node a data \
         folder of its own",
        dir.join("node-id").display()
    )))
}

/// The name of the node whose data folder is `dir`, made once: it outlives restarts, so a
/// restarted node finds its own claims and pipeline marker.
fn node_id(dir: &Path) -> Result<std::sync::Arc<str>, StoreError> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().into()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => {
            let id = directory::data_hex(&random_bytes::<8>());
            std::fs::write(&path, format!("{id}\n"))?;
            Ok(id.into())
        }
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

/// Brings the PostgreSQL database at `url` to this version's schema; the versions it
/// applied (none when it was current). Refuses a database written by a newer version.
pub fn migrate_postgres(url: &str) -> Result<Vec<i32>, StoreError> {
    Ok(engine::migrate(url)?)
}

/// For tests of every crate: the same test suite runs on either engine.
#[doc(hidden)]
pub mod testing {
    use crate::{Store, StoreError};
    use std::path::Path;

    /// The PostgreSQL server tests use when `POSTDESK_TEST_BACKEND=postgres`.
    pub fn database_url() -> Option<String> {
        (std::env::var("POSTDESK_TEST_BACKEND").as_deref() == Ok("postgres"))
            .then(|| std::env::var("POSTDESK_TEST_DATABASE_URL").ok())
            .flatten()
    }

    /// Opens the store of a test's folder `dir`: sled in it, or with
    /// `POSTDESK_TEST_BACKEND=postgres` a schema of its own (named after `dir`, so that a
    /// reopen finds it) in the server at `POSTDESK_TEST_DATABASE_URL`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let Some(url) = database_url() else {
            // A store just dropped in this process may hold sled's file lock a moment
            // longer (its flusher thread ends on its own): a reopen waits for it.
            let mut tries = 0;
            return loop {
                match Store::open(dir) {
                    Err(e) if tries < 50 && e.to_string().contains("could not acquire lock") => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    opened => break opened,
                }
            };
        };
        // A folder not made yet is a fresh store: a schema left by an earlier run goes.
        let url = schema_url(&url, &dir.to_string_lossy(), !dir.exists())?;
        Store::open_postgres(dir, &url)
    }

    /// The URL of a schema of its own (named after `name`) in the database at `url`,
    /// made empty first when `fresh`.
    pub fn schema_url(url: &str, name: &str, fresh: bool) -> Result<String, StoreError> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(name.as_bytes());
        let schema = format!("t{}", crate::directory::data_hex(&digest[..10]));
        crate::engine::create_schema(url, &schema, fresh)?;
        let joiner = if url.contains('?') { '&' } else { '?' };
        Ok(format!("{url}{joiner}options=-c%20search_path%3D{schema}"))
    }

    /// Deletes stored contents as a failing disk would, for tests of what survives that.
    pub fn lose_blob(store: &Store, sha256: &str) -> Result<bool, StoreError> {
        store.drop_blob(sha256)
    }
}

/// A database URL as people may read it: no password, wherever the URL keeps it.
pub fn describe_database_url(url: &str) -> String {
    engine::describe(url)
}

/// The schema version this build of the store writes to PostgreSQL.
pub const POSTGRES_SCHEMA_VERSION: i32 = engine::SCHEMA_VERSION;

/// Random bytes from the operating system, for secrets and tokens.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::RngCore;
    let mut out = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}
