//! Moving a sled store into PostgreSQL (server stopped): every tree, and the large values
//! kept as files, copied in batches that record how far they got; then counted and hashed
//! on both sides. A second run resumes an unfinished copy and refuses a finished one.

use crate::codec::encode;
use crate::engine::{Batch, Db, Pg, Tree, Value};
use crate::files::Kind;
use crate::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::ops::Bound;

/// Entries, and bytes, per committed batch.
const BATCH_ENTRIES: usize = 2000;
const BATCH_BYTES: usize = 16 << 20;

/// The trees a store has, as both engines name them.
const TREES: [&str; 3] = ["state", "raw", "blobs"];

/// The tree of the target where the copy keeps its own records.
const MARKS: &str = "store-migration";

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Entries copied, per tree, in [`TREES`] order (files counted in their tree).
    pub entries: [u64; 3],
    /// Whether this run went on from an earlier one that stopped.
    pub resumed: bool,
}

/// What the copy saw of one tree: how many entries, and a hash of them that does not
/// depend on their order (files join their tree out of key order).
#[derive(Default, PartialEq, Eq, Debug, Clone, Copy)]
struct Tally {
    count: u64,
    sum: [u64; 4],
}

impl Tally {
    fn add(&mut self, k: &[u8], v: &[u8]) {
        let mut h = Sha256::new();
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
        let digest = h.finalize();
        for (i, part) in digest.chunks_exact(8).enumerate() {
            let word = u64::from_be_bytes(part.try_into().unwrap_or_default());
            self.sum[i] = self.sum[i].wrapping_add(word);
        }
        self.count += 1;
    }
}

fn mark_key(what: &str, tree: &str) -> Vec<u8> {
    format!("{what}/{tree}").into_bytes()
}

impl Store {
    /// Copies this (sled) store into the PostgreSQL database at `url`, which must hold no
    /// store or an unfinished copy of this one. `progress` hears each tree's entries so far.
    pub fn move_to_postgres(
        &self,
        url: &str,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<Moved, StoreError> {
        if self.is_shared() {
            return Err(StoreError::Invalid(
                "the store is in PostgreSQL already".into(),
            ));
        }
        let pg = Db::Pg(Pg::connect(url)?);
        let marks = pg.open_tree(MARKS)?;
        let source = self.identity()?;
        let resumed = match marks.get("source")? {
            Some(s) if *s == *source => {
                if marks.get("done")?.is_some() {
                    return Err(StoreError::Invalid(
                        "this store was moved into that database already; nothing to do".into(),
                    ));
                }
                true
            }
            Some(_) => {
                return Err(StoreError::Invalid(
                    "that database holds a copy of another store; give an empty database".into(),
                ))
            }
            None => {
                for name in TREES {
                    if pg.open_tree(name)?.iter().next().is_some() {
                        return Err(StoreError::Invalid(format!(
                            "that database already holds a store (its {name} records); give \
                             an empty database"
                        )));
                    }
                }
                marks.insert("source", source.clone())?;
                false
            }
        };
        for name in TREES {
            let target = pg.open_tree(name)?;
            copy_tree(
                &pg,
                self.tree_named(name),
                &target,
                &marks,
                name,
                &mut progress,
            )?;
            if let Some(kind) = file_kind(name) {
                self.copy_files(&pg, kind, &target, name, &mut progress)?;
            }
        }
        // Counted and hashed again on both sides, from the start.
        let mut entries = [0; 3];
        for (i, name) in TREES.iter().enumerate() {
            let here = self.tally(name)?;
            let there = tally(&pg.open_tree(name)?)?;
            if here != there {
                return Err(StoreError::Corrupt(format!(
                    "the copy of {name} differs: {} entries here, {} there (or their \
                     contents differ); run the move again to copy what is missing",
                    here.count, there.count
                )));
            }
            entries[i] = here.count;
        }
        marks.insert("done", encode(&entries)?)?;
        pg.flush()?;
        Ok(Moved { entries, resumed })
    }

    fn tree_named(&self, name: &str) -> &Tree {
        match name {
            "raw" => &self.raw,
            "blobs" => &self.blobs,
            _ => &self.state,
        }
    }

    /// What names this store among others: a secret of its own, made at its first move.
    fn identity(&self) -> Result<Vec<u8>, StoreError> {
        Ok(Sha256::digest(self.secret("store-id")?).to_vec())
    }

    /// Copies the files of `kind` into `target` (as the keys they have on PostgreSQL).
    fn copy_files(
        &self,
        pg: &Db,
        kind: Kind,
        target: &Tree,
        name: &str,
        progress: &mut impl FnMut(&str, u64),
    ) -> Result<u64, StoreError> {
        let mut copied = 0;
        for file in self.files.names(kind)? {
            let Some(key) = file_key(kind, &file) else {
                continue;
            };
            let Some(bytes) = self.files.read(kind, &file)? else {
                continue;
            };
            let mut batch = Batch::default();
            batch.insert(key, bytes);
            pg.apply_batches(vec![(target, batch)])?;
            copied += 1;
            progress(name, copied);
        }
        Ok(copied)
    }

    /// Entries of tree `name` with the files that join it on PostgreSQL.
    fn tally(&self, name: &str) -> Result<Tally, StoreError> {
        let mut t = tally(self.tree_named(name))?;
        if let Some(kind) = file_kind(name) {
            for file in self.files.names(kind)? {
                if let (Some(key), Some(bytes)) =
                    (file_key(kind, &file), self.files.read(kind, &file)?)
                {
                    t.add(&key, &bytes);
                }
            }
        }
        Ok(t)
    }
}

fn file_kind(tree: &str) -> Option<Kind> {
    match tree {
        "raw" => Some(Kind::Raw),
        "blobs" => Some(Kind::Blob),
        _ => None,
    }
}

/// The key a file's contents have in its tree: an inbound id's 8 bytes, or a hash.
fn file_key(kind: Kind, file: &str) -> Option<Vec<u8>> {
    match kind {
        Kind::Raw => file.parse::<u64>().ok().map(|id| id.to_be_bytes().to_vec()),
        Kind::Blob => Some(file.as_bytes().to_vec()),
    }
}

/// Copies `from` into `target` in batches, each committed with the last key it holds;
/// starts after the key an earlier run recorded.
fn copy_tree(
    pg: &Db,
    from: &Tree,
    target: &Tree,
    marks: &Tree,
    name: &str,
    progress: &mut impl FnMut(&str, u64),
) -> Result<u64, StoreError> {
    let start = match marks.get(mark_key("after", name))? {
        Some(k) => Bound::Excluded(k),
        None => Bound::Unbounded,
    };
    let mut copied = 0;
    let (mut batch, mut bytes, mut last) = (Batch::default(), 0, None::<Value>);
    let commit = |batch: Batch, last: &Value| -> Result<(), StoreError> {
        let mut mark = Batch::default();
        mark.insert(mark_key("after", name), last.clone());
        pg.apply_batches(vec![(target, batch), (marks, mark)])?;
        Ok(())
    };
    for kv in from.range_from(start) {
        let (k, v) = kv?;
        bytes += k.len() + v.len();
        batch.insert(k.clone(), v);
        last = Some(k);
        copied += 1;
        if copied % BATCH_ENTRIES as u64 == 0 || bytes >= BATCH_BYTES {
            if let Some(last) = &last {
                commit(std::mem::take(&mut batch), last)?;
            }
            bytes = 0;
            progress(name, copied);
        }
    }
    if let Some(last) = &last {
        commit(batch, last)?;
    }
    progress(name, copied);
    Ok(copied)
}

fn tally(tree: &Tree) -> Result<Tally, StoreError> {
    let mut t = Tally::default();
    for kv in tree.iter() {
        let (k, v) = kv?;
        t.add(&k, &v);
    }
    Ok(t)
}
