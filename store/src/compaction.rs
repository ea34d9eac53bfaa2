//! Compacting the database (server stopped): every tree is copied into a fresh database,
//! checked, and put in the old one's place, so the old versions of records that sled keeps
//! in its log until it reuses the space (an erased person's, a deleted ticket's) are gone.

use crate::StoreError;
use std::path::Path;

/// The database folder inside the data folder, and the two names a compaction uses.
const DB: &str = "db";
const NEW: &str = "db.compact";
const OLD: &str = "db.old";

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    /// Records copied, over all trees.
    pub records: u64,
    /// The database folder's size before and after, in bytes.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn folder_size(dir: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        n += if meta.is_dir() {
            folder_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(n)
}

/// Finishes a compaction a crash interrupted between its two renames: the old database is
/// put back if the new one is not in place yet, else removed. Called before opening.
pub(crate) fn recover(data: &Path) -> Result<(), StoreError> {
    let (db, old) = (data.join(DB), data.join(OLD));
    if old.is_dir() {
        if db.is_dir() {
            std::fs::remove_dir_all(&old)?;
        } else {
            std::fs::rename(&old, &db)?;
        }
    }
    Ok(())
}

/// sled's page cache for each of the two databases a compaction opens (its default is
/// 1 GiB; the server uses 32 MiB).
const CACHE: u64 = 32 * 1024 * 1024;

/// Syncs a folder, so the renames in it are on disk.
fn sync_folder(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Rewrites the database of data folder `data` (no server may have it open): a copy of
/// every tree into `db.compact`, the copy's record count checked against the original's,
/// then `db` → `db.old`, `db.compact` → `db`, `db.old` removed. A copy that fails is
/// removed and the database is left as it was.
pub fn compact(data: &Path) -> Result<Compacted, StoreError> {
    recover(data)?;
    let (db_dir, new_dir, old_dir) = (data.join(DB), data.join(NEW), data.join(OLD));
    if !db_dir.is_dir() {
        return Err(StoreError::NotFound(format!(
            "a database in {}",
            data.display()
        )));
    }
    if new_dir.exists() {
        std::fs::remove_dir_all(&new_dir)?;
    }
    let bytes_before = folder_size(&db_dir)?;
    let copied = copy_trees(&db_dir, &new_dir);
    let records = match copied {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&new_dir);
            return Err(e);
        }
    };
    std::fs::rename(&db_dir, &old_dir)?;
    std::fs::rename(&new_dir, &db_dir)?;
    sync_folder(data)?;
    // The swap is done: what is left to do is removing the old copy, which the next open
    // also does.
    if let Err(e) = std::fs::remove_dir_all(&old_dir) {
        return Err(StoreError::Invalid(format!(
            "the database is compacted, but its old copy {} could not be removed ({e}); \
             remove it, or the next start will",
            old_dir.display()
        )));
    }
    Ok(Compacted {
        records,
        bytes_before,
        bytes_after: folder_size(&db_dir)?,
    })
}

/// Copies every tree of the database in `from` into a new one in `to`, each copy's count
/// checked; returns how many records were copied.
fn copy_trees(from_dir: &Path, to_dir: &Path) -> Result<u64, StoreError> {
    let old = sled::Config::new()
        .path(from_dir)
        .cache_capacity(CACHE)
        .open()?;
    let new = sled::Config::new()
        .path(to_dir)
        .cache_capacity(CACHE)
        .open()?;
    let mut copied = 0u64;
    for name in old.tree_names() {
        let (from, to) = (old.open_tree(&name)?, new.open_tree(&name)?);
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for kv in from.iter() {
            let (k, v) = kv?;
            batch.insert(k, v);
            in_batch += 1;
            copied += 1;
            if in_batch == 10_000 {
                to.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        to.apply_batch(batch)?;
        if to.len() != from.len() {
            return Err(StoreError::Corrupt(format!(
                "compaction copied {} of {} records of tree {}",
                to.len(),
                from.len(),
                String::from_utf8_lossy(&name)
            )));
        }
    }
    new.flush()?;
    Ok(copied)
}

impl crate::Store {
    /// Compacts a store in PostgreSQL in place (`VACUUM FULL`, server stopped or not: the
    /// table is locked while it is rewritten). A sled store is compacted by [`compact`]
    /// with no store open.
    pub fn compact_shared(&self) -> Result<Compacted, StoreError> {
        let crate::engine::Db::Pg(pg) = &self.db else {
            return Err(StoreError::Invalid(
                "a sled store is compacted with no store open (postdesk compact)".into(),
            ));
        };
        let (bytes_before, bytes_after) = pg.vacuum_full()?;
        let mut records = 0;
        for tree in [&self.state, &self.raw, &self.blobs] {
            for kv in tree.iter() {
                kv?;
                records += 1;
            }
        }
        Ok(Compacted {
            records,
            bytes_before,
            bytes_after,
        })
    }
}
