//! Moving a sled store into PostgreSQL (server stopped): every tree, with the large values
//! kept as files, brought to the database by a walk of both sides in key order that writes
//! what differs (so a stopped move, or a store changed since, is put right by the next
//! run); then counted and hashed on both sides. A finished move is refused, and marks the
//! data folder so that its sled store is not used again by mistake.

use crate::codec::encode;
use crate::engine::{Batch, Db, EngineError, Pg, Tree, Value};
use crate::files::Kind;
use crate::{Store, StoreError};
use sha2::{Digest, Sha256};

/// Entries, and bytes, per committed batch.
const BATCH_ENTRIES: usize = 2000;
const BATCH_BYTES: usize = 16 << 20;

/// The trees a store has, as both engines name them.
const TREES: [&str; 3] = ["state", "raw", "blobs"];

/// The tree of the target where the move keeps its own records.
pub(crate) const MARKS: &str = "store-migration";

/// The file in a data folder whose store was moved.
pub(crate) const MOVED: &str = "moved-to-postgres";

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
            sync_tree(&pg, self.entries(name)?, &target, name, &mut progress)?;
        }
        // Counted and hashed again on both sides, from the start.
        let mut entries = [0; 3];
        for (i, name) in TREES.iter().enumerate() {
            let here = self.tally(name)?;
            let there = tally(&pg.open_tree(name)?)?;
            if here != there {
                return Err(StoreError::Invalid(format!(
                    "the copy of {name} differs from the store: {} records here, {} there \
                     (or their contents differ); run the move again, with no server on \
                     either side, to put it right",
                    here.count, there.count
                )));
            }
            entries[i] = here.count;
        }
        marks.insert("done", encode(&entries)?)?;
        pg.flush()?;
        pg.analyze()?;
        if let Some(data) = self.delivered.parent() {
            std::fs::write(
                data.join(MOVED),
                "This data folder's store was moved to PostgreSQL (postdesk migrate-store).\n",
            )?;
        }
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

    /// The entries of tree `name` in key order, with the files that join it on PostgreSQL
    /// (read as they come).
    fn entries(&self, name: &str) -> Result<Entries<'_>, StoreError> {
        let mut files = Vec::new();
        if let Some(kind) = file_kind(name) {
            for file in self.files.names(kind)? {
                if let Some(key) = file_key(kind, &file) {
                    files.push((key, kind, file));
                }
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Entries {
            store: self,
            tree: self.tree_named(name).iter().peekable(),
            files: files.into_iter().peekable(),
        })
    }

    /// Entries of tree `name` with the files that join it on PostgreSQL.
    fn tally(&self, name: &str) -> Result<Tally, StoreError> {
        let mut t = Tally::default();
        for entry in self.entries(name)? {
            let (k, v) = entry?;
            t.add(&k, &v);
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

/// A tree's entries and its files, merged in key order.
struct Entries<'a> {
    store: &'a Store,
    tree: std::iter::Peekable<crate::engine::Iter>,
    files: std::iter::Peekable<std::vec::IntoIter<(Vec<u8>, Kind, String)>>,
}

impl Iterator for Entries<'_> {
    type Item = Result<(Value, Value), StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        // A key both in the tree and a file (a file left by a crash before its id was
        // given again): the tree's value is the one the store reads, the file is skipped.
        while let (Some(Ok((k, _))), Some((f, _, _))) = (self.tree.peek(), self.files.peek()) {
            if f.as_slice() != k.as_ref() {
                break;
            }
            if let Some((_, _, file)) = self.files.next() {
                tracing::warn!(%file, "a file with the same key as a record is left out of the move");
            }
        }
        let file_first = match (self.tree.peek(), self.files.peek()) {
            (_, None) | (Some(Err(_)), _) => false,
            (None, Some(_)) => true,
            (Some(Ok((k, _))), Some((f, _, _))) => f.as_slice() < k.as_ref(),
        };
        if !file_first {
            return self.tree.next().map(|r| r.map_err(StoreError::from));
        }
        let (key, kind, file) = self.files.next()?;
        Some(match self.store.files.read(kind, &file) {
            Ok(Some(bytes)) => Ok((Value::from(key), Value::from(bytes))),
            Ok(None) => Err(StoreError::Invalid(format!(
                "file {file} vanished during the move"
            ))),
            Err(e) => Err(e.into()),
        })
    }
}

/// The target's keys below `bound` (all, without one): they are not the store's.
fn remove_below(
    there: &mut std::iter::Peekable<crate::engine::Iter>,
    bound: Option<&[u8]>,
    batch: &mut Batch,
) -> Result<(), StoreError> {
    loop {
        match there.peek() {
            Some(Ok((k, _))) if bound.is_none_or(|b| k.as_ref() < b) => {
                batch.remove(k.clone());
                there.next();
            }
            Some(Err(_)) => {
                let e = there.next().and_then(Result::err);
                return Err(e
                    .unwrap_or_else(|| EngineError::Postgres("a read failed".into()))
                    .into());
            }
            _ => return Ok(()),
        }
    }
}

/// Brings `target` to `source`'s entries: both walked in key order, what is missing or
/// different written and what is extra removed, in batches; `progress` hears the count.
fn sync_tree(
    pg: &Db,
    source: impl Iterator<Item = Result<(Value, Value), StoreError>>,
    target: &Tree,
    name: &str,
    progress: &mut impl FnMut(&str, u64),
) -> Result<(), StoreError> {
    let mut there = target.iter().peekable();
    let (mut batch, mut bytes, mut seen) = (Batch::default(), 0, 0u64);
    for entry in source {
        let (k, v) = entry?;
        remove_below(&mut there, Some(&k), &mut batch)?;
        let same = match there.peek() {
            Some(Ok((tk, tv))) if *tk == k => {
                let same = *tv == v;
                there.next();
                same
            }
            _ => false,
        };
        if !same {
            bytes += k.len() + v.len();
            batch.insert(k, v);
        }
        seen += 1;
        if batch.len() >= BATCH_ENTRIES || bytes >= BATCH_BYTES {
            pg.apply_batches(vec![(target, std::mem::take(&mut batch))])?;
            bytes = 0;
        }
        if seen % BATCH_ENTRIES as u64 == 0 {
            progress(name, seen);
        }
    }
    remove_below(&mut there, None, &mut batch)?;
    if !batch.is_empty() {
        pg.apply_batches(vec![(target, batch)])?;
    }
    progress(name, seen);
    Ok(())
}

fn tally(tree: &Tree) -> Result<Tally, StoreError> {
    let mut t = Tally::default();
    for kv in tree.iter() {
        let (k, v) = kv?;
        t.add(&k, &v);
    }
    Ok(t)
}
