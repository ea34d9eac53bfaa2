//! The ordered key-value engine under the store: sled in the data folder (one node), or
//! PostgreSQL (`database_url`, any number of nodes). The rest of the store sees only this.

mod postgres;

pub(crate) use self::postgres::{create_schema, describe, migrate, Pg, PgLease, SCHEMA_VERSION};
use std::ops::{Bound, RangeBounds};

/// A stored key or value: a cheap, shareable byte string.
pub(crate) type Value = sled::IVec;

/// What the engine under the store could not do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Sled(#[from] sled::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

/// A set of writes to one tree, applied together.
#[derive(Default)]
pub(crate) struct Batch {
    writes: Vec<(Value, Option<Value>)>,
}

impl Batch {
    pub(crate) fn insert(&mut self, k: impl Into<Value>, v: impl Into<Value>) {
        self.writes.push((k.into(), Some(v.into())));
    }
    pub(crate) fn remove(&mut self, k: impl Into<Value>) {
        self.writes.push((k.into(), None));
    }
    pub(crate) fn len(&self) -> usize {
        self.writes.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// A write in a transaction met a concurrent one; the engine runs the closure again.
#[derive(Debug)]
pub(crate) enum UnabortableTransactionError {
    Conflict,
    Storage(EngineError),
}

/// How a transaction's closure ends early: its own error (`Abort`), or the engine's.
#[derive(Debug)]
pub(crate) enum ConflictableTransactionError<E> {
    Abort(E),
    Conflict,
    Storage(EngineError),
}

pub(crate) type ConflictableTransactionResult<T, E> = Result<T, ConflictableTransactionError<E>>;

/// How a transaction failed: the closure's error, or the engine's.
#[derive(Debug)]
pub(crate) enum TransactionError<E> {
    Abort(E),
    Storage(EngineError),
}

impl<E> From<UnabortableTransactionError> for ConflictableTransactionError<E> {
    fn from(e: UnabortableTransactionError) -> Self {
        match e {
            UnabortableTransactionError::Conflict => ConflictableTransactionError::Conflict,
            UnabortableTransactionError::Storage(e) => ConflictableTransactionError::Storage(e),
        }
    }
}

impl From<sled::transaction::UnabortableTransactionError> for UnabortableTransactionError {
    fn from(e: sled::transaction::UnabortableTransactionError) -> Self {
        match e {
            sled::transaction::UnabortableTransactionError::Conflict => Self::Conflict,
            sled::transaction::UnabortableTransactionError::Storage(e) => Self::Storage(e.into()),
        }
    }
}

/// A compare-and-swap found another value than the one expected.
#[derive(Debug)]
pub(crate) struct CompareAndSwapError {
    pub(crate) current: Option<Value>,
}

/// The database: one of the two engines.
#[derive(Clone)]
pub(crate) enum Db {
    Sled(sled::Db),
    Pg(Pg),
}

impl Db {
    pub(crate) fn open_tree(&self, name: &str) -> Result<Tree, EngineError> {
        Ok(match self {
            Db::Sled(db) => Tree::Sled(db.open_tree(name)?),
            Db::Pg(pg) => Tree::Pg(pg.open_tree(name)?),
        })
    }

    /// Makes every write so far durable (PostgreSQL: every commit so far, of any node).
    pub(crate) fn flush(&self) -> Result<(), EngineError> {
        match self {
            Db::Sled(db) => db.flush().map(drop).map_err(Into::into),
            Db::Pg(pg) => pg.flush(),
        }
    }

    /// Applies batches to several trees as one: atomically on PostgreSQL; on sled one
    /// after the other (a flush makes them durable together).
    pub(crate) fn apply_batches(&self, batches: Vec<(&Tree, Batch)>) -> Result<(), EngineError> {
        match self {
            Db::Sled(_) => batches.into_iter().try_for_each(|(t, b)| t.apply_batch(b)),
            Db::Pg(pg) => pg.apply_batches(
                batches
                    .into_iter()
                    .map(|(t, b)| match t {
                        Tree::Pg(t) => Ok((t.clone(), b)),
                        Tree::Sled(_) => Err(EngineError::Postgres("a sled tree".into())),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        }
    }

    /// Gathers the database's planner statistics now (PostgreSQL; nothing on sled).
    pub(crate) fn analyze(&self) -> Result<(), EngineError> {
        match self {
            Db::Sled(_) => Ok(()),
            Db::Pg(pg) => pg.analyze(),
        }
    }

    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// The use of PostgreSQL's connection pool: (connections, idle, max, waiting).
    pub(crate) fn pool_use(&self) -> Option<(usize, usize, usize, usize)> {
        match self {
            Db::Sled(_) => None,
            Db::Pg(pg) => Some(pg.pool_use()),
        }
    }
}

/// One ordered map of byte keys to byte values.
#[derive(Clone)]
pub(crate) enum Tree {
    Sled(sled::Tree),
    Pg(postgres::PgTree),
}

/// A key's bounds, owned.
pub(crate) type Bounds = (Bound<Value>, Bound<Value>);

fn owned(b: Bound<&[u8]>) -> Bound<Value> {
    match b {
        Bound::Included(k) => Bound::Included(Value::from(k)),
        Bound::Excluded(k) => Bound::Excluded(Value::from(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The bounds of the keys that start with `prefix`.
fn prefix_bounds(prefix: &[u8]) -> Bounds {
    let mut end = prefix.to_vec();
    let upper = loop {
        match end.pop() {
            None => break Bound::Unbounded,
            Some(0xff) => continue,
            Some(b) => {
                end.push(b + 1);
                break Bound::Excluded(Value::from(end));
            }
        }
    };
    (Bound::Included(Value::from(prefix)), upper)
}

impl Tree {
    pub(crate) fn get(&self, k: impl AsRef<[u8]>) -> Result<Option<Value>, EngineError> {
        match self {
            Tree::Sled(t) => Ok(t.get(k)?),
            Tree::Pg(t) => t.get(k.as_ref()),
        }
    }

    /// The values of `keys`, in their order (PostgreSQL: one statement for all).
    pub(crate) fn get_many(&self, keys: &[Value]) -> Result<Vec<Option<Value>>, EngineError> {
        match self {
            Tree::Sled(t) => keys.iter().map(|k| Ok(t.get(k)?)).collect(),
            Tree::Pg(t) => t.get_many(keys),
        }
    }

    /// The value of `k` as a vector of its own (for large values: one copy fewer).
    pub(crate) fn get_vec(&self, k: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, EngineError> {
        match self {
            Tree::Sled(t) => Ok(t.get(k)?.map(|v| v.to_vec())),
            Tree::Pg(t) => t.get_vec(k.as_ref()),
        }
    }

    pub(crate) fn contains_key(&self, k: impl AsRef<[u8]>) -> Result<bool, EngineError> {
        match self {
            Tree::Sled(t) => Ok(t.contains_key(k)?),
            Tree::Pg(t) => t.contains_key(k.as_ref()),
        }
    }

    /// Sets `k` to `v`; the value it had.
    pub(crate) fn insert(
        &self,
        k: impl AsRef<[u8]>,
        v: impl Into<Value>,
    ) -> Result<Option<Value>, EngineError> {
        match self {
            Tree::Sled(t) => Ok(t.insert(k, v.into())?),
            Tree::Pg(t) => t.insert(k.as_ref(), &v.into()),
        }
    }

    /// Removes `k`; the value it had.
    pub(crate) fn remove(&self, k: impl AsRef<[u8]>) -> Result<Option<Value>, EngineError> {
        match self {
            Tree::Sled(t) => Ok(t.remove(k)?),
            Tree::Pg(t) => t.remove(k.as_ref()),
        }
    }

    pub(crate) fn apply_batch(&self, batch: Batch) -> Result<(), EngineError> {
        match self {
            Tree::Sled(t) => {
                let mut b = sled::Batch::default();
                for (k, v) in batch.writes {
                    match v {
                        Some(v) => b.insert(k, v),
                        None => b.remove(k),
                    }
                }
                Ok(t.apply_batch(b)?)
            }
            Tree::Pg(t) => t.pg().apply_batches(vec![(t.clone(), batch)]),
        }
    }

    /// Sets `k` to `new` if it holds `old` (`None`: absent), atomically.
    pub(crate) fn compare_and_swap(
        &self,
        k: impl AsRef<[u8]>,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), CompareAndSwapError>, EngineError> {
        match self {
            Tree::Sled(t) => Ok(t
                .compare_and_swap(k, old, new)?
                .map_err(|e| CompareAndSwapError { current: e.current })),
            Tree::Pg(t) => t.compare_and_swap(k.as_ref(), old, new),
        }
    }

    /// Replaces `k`'s value by `f` of it, atomically; the new value.
    pub(crate) fn update_and_fetch<V: Into<Value>>(
        &self,
        k: impl AsRef<[u8]>,
        mut f: impl FnMut(Option<&[u8]>) -> Option<V>,
    ) -> Result<Option<Value>, EngineError> {
        match self {
            Tree::Sled(t) => {
                Ok(t.update_and_fetch(k, |old| f(old).map(Into::into).map(|v: Value| v.to_vec()))?)
            }
            Tree::Pg(_) => {
                let k = k.as_ref();
                let f = std::cell::RefCell::new(f);
                self.transaction(|tx| {
                    let old = tx.get(k)?;
                    let new: Option<Value> = (f.borrow_mut())(old.as_deref()).map(Into::into);
                    match &new {
                        Some(v) => tx.insert(k, v.clone())?,
                        None => tx.remove(k)?,
                    }
                    Ok::<_, ConflictableTransactionError<EngineError>>(new)
                })
                .map_err(|e| match e {
                    TransactionError::Abort(e) | TransactionError::Storage(e) => e,
                })
            }
        }
    }

    pub(crate) fn iter(&self) -> Iter {
        self.range_bounds((Bound::Unbounded, Bound::Unbounded))
    }

    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        match self {
            Tree::Sled(t) => Iter::Sled(t.scan_prefix(prefix)),
            Tree::Pg(t) => Iter::Pg(t.iter(prefix_bounds(prefix.as_ref()))),
        }
    }

    /// How many keys start with `prefix` (PostgreSQL counts them without sending them).
    pub(crate) fn count_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<u64, EngineError> {
        match self {
            Tree::Sled(t) => {
                let mut n = 0;
                for k in t.scan_prefix(prefix) {
                    k?;
                    n += 1;
                }
                Ok(n)
            }
            Tree::Pg(t) => t.count(prefix_bounds(prefix.as_ref())),
        }
    }

    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        let bounds = (
            owned(range.start_bound().map(AsRef::as_ref)),
            owned(range.end_bound().map(AsRef::as_ref)),
        );
        self.range_bounds(bounds)
    }

    fn range_bounds(&self, bounds: Bounds) -> Iter {
        match self {
            Tree::Sled(t) => Iter::Sled(t.range(bounds)),
            Tree::Pg(t) => Iter::Pg(t.iter(bounds)),
        }
    }

    /// Runs `f` as one transaction, again while it meets concurrent writes.
    pub(crate) fn transaction<A, E>(
        &self,
        f: impl Fn(&TransactionalTree) -> ConflictableTransactionResult<A, E>,
    ) -> Result<A, TransactionError<E>> {
        match self {
            Tree::Sled(t) => {
                use sled::transaction as st;
                t.transaction(|stx| {
                    f(&TransactionalTree::Sled(stx)).map_err(|e| match e {
                        ConflictableTransactionError::Abort(e) => {
                            st::ConflictableTransactionError::Abort(Ok(e))
                        }
                        ConflictableTransactionError::Conflict => {
                            st::ConflictableTransactionError::Conflict
                        }
                        ConflictableTransactionError::Storage(EngineError::Sled(e)) => {
                            st::ConflictableTransactionError::Storage(e)
                        }
                        ConflictableTransactionError::Storage(e) => {
                            st::ConflictableTransactionError::Abort(Err(e))
                        }
                    })
                })
                .map_err(|e| match e {
                    st::TransactionError::Abort(Ok(e)) => TransactionError::Abort(e),
                    st::TransactionError::Abort(Err(e)) => TransactionError::Storage(e),
                    st::TransactionError::Storage(e) => TransactionError::Storage(e.into()),
                })
            }
            Tree::Pg(t) => t.transaction(f),
        }
    }
}

/// A tree inside a transaction: reads see the transaction's own writes.
pub(crate) enum TransactionalTree<'a> {
    Sled(&'a sled::transaction::TransactionalTree),
    Pg(&'a postgres::PgTx<'a>),
}

impl TransactionalTree<'_> {
    /// Whether this is PostgreSQL's (a store several nodes may share).
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, TransactionalTree::Pg(_))
    }

    pub(crate) fn get(
        &self,
        k: impl AsRef<[u8]>,
    ) -> Result<Option<Value>, UnabortableTransactionError> {
        match self {
            TransactionalTree::Sled(t) => Ok(t.get(k)?),
            TransactionalTree::Pg(t) => t.get(k.as_ref()),
        }
    }

    pub(crate) fn insert(
        &self,
        k: impl AsRef<[u8]>,
        v: impl Into<Value>,
    ) -> Result<(), UnabortableTransactionError> {
        match self {
            TransactionalTree::Sled(t) => {
                t.insert(k.as_ref(), v.into()).map(drop).map_err(Into::into)
            }
            TransactionalTree::Pg(t) => {
                t.write(Value::from(k.as_ref()), Some(v.into()));
                Ok(())
            }
        }
    }

    pub(crate) fn remove(&self, k: impl AsRef<[u8]>) -> Result<(), UnabortableTransactionError> {
        match self {
            TransactionalTree::Sled(t) => t.remove(k.as_ref()).map(drop).map_err(Into::into),
            TransactionalTree::Pg(t) => {
                t.write(Value::from(k.as_ref()), None);
                Ok(())
            }
        }
    }
}

/// Key-value pairs of a tree in key order (or reversed), read lazily.
pub(crate) enum Iter {
    Sled(sled::Iter),
    Pg(postgres::PgIter),
}

impl Iterator for Iter {
    type Item = Result<(Value, Value), EngineError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Sled(i) => i.next().map(|r| r.map_err(Into::into)),
            Iter::Pg(i) => i.next(),
        }
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Sled(i) => i.next_back().map(|r| r.map_err(Into::into)),
            Iter::Pg(i) => i.next_back(),
        }
    }
}

impl Iter {
    pub(crate) fn keys(self) -> impl DoubleEndedIterator<Item = Result<Value, EngineError>> {
        self.map(|r| r.map(|(k, _)| k))
    }
    pub(crate) fn values(self) -> impl DoubleEndedIterator<Item = Result<Value, EngineError>> {
        self.map(|r| r.map(|(_, v)| v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::scratch_store;

    fn keys(iter: impl Iterator<Item = Result<(Value, Value), EngineError>>) -> Vec<Vec<u8>> {
        iter.map(|r| r.expect("read").0.to_vec()).collect()
    }

    /// One contract for both engines (the PostgreSQL pass runs this on its tables):
    /// order, both ends, bounds, prefixes, counts, pages of small and of large values.
    #[test]
    fn walks_agree_with_a_sorted_map_from_either_end() {
        let (s, _dir) = scratch_store("engine-walks");
        let mut want = std::collections::BTreeMap::new();
        for i in 0..1200u32 {
            let k = format!("p{}/{i:05}", i % 3).into_bytes();
            s.state
                .insert(&k, i.to_be_bytes().to_vec())
                .expect("insert");
            want.insert(k, i.to_be_bytes().to_vec());
        }
        let all: Vec<Vec<u8>> = want.keys().cloned().collect();
        assert_eq!(keys(s.state.scan_prefix("p")), all);
        let mut back = all.clone();
        back.reverse();
        assert_eq!(keys(s.state.scan_prefix("p").rev()), back);
        // Both ends at once: every key once.
        let mut it = s.state.scan_prefix("p");
        let mut seen = Vec::new();
        for n in 0.. {
            let next = if n % 3 == 0 {
                it.next_back()
            } else {
                it.next()
            };
            match next {
                Some(r) => seen.push(r.expect("read").0.to_vec()),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, all);
        let p1: Vec<Vec<u8>> = all
            .iter()
            .filter(|k| k.starts_with(b"p1/"))
            .cloned()
            .collect();
        assert_eq!(keys(s.state.scan_prefix("p1/")), p1);
        assert_eq!(s.state.count_prefix("p1/").expect("count"), p1.len() as u64);
        let (lo, hi) = (b"p0/00300".to_vec(), b"p2/00005".to_vec());
        let ranged: Vec<Vec<u8>> = all
            .iter()
            .filter(|k| **k >= lo && **k < hi)
            .cloned()
            .collect();
        assert_eq!(keys(s.state.range(lo.clone()..hi.clone())), ranged);
        assert_eq!(keys(s.state.range(lo..=hi.clone())).last(), Some(&hi));

        // Large values: pages bounded by bytes, still every key once, in order.
        let mut big = Vec::new();
        for i in 0..12u64 {
            let v = vec![i as u8; (i as usize % 4) * 1_500_000 + 10];
            s.raw.insert(i.to_be_bytes(), v.clone()).expect("insert");
            big.push((i.to_be_bytes().to_vec(), v));
        }
        let got: Vec<(Vec<u8>, Vec<u8>)> = s
            .raw
            .iter()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("read"))
            .collect();
        assert_eq!(got, big);
        let back: Vec<Vec<u8>> = keys(s.raw.iter().rev());
        let mut want_back: Vec<Vec<u8>> = big.iter().map(|(k, _)| k.clone()).collect();
        want_back.reverse();
        assert_eq!(back, want_back);
    }
}
