//! Encoding of records and keys: JSON values, big-endian numbers so keys sort numerically.

use crate::StoreError;
use serde::{de::DeserializeOwned, Serialize};

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `prefix` followed by `n` as 8 big-endian bytes.
pub(crate) fn num_key(prefix: &str, n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8);
    k.extend_from_slice(prefix.as_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// Reads the big-endian number that ends a key.
pub(crate) fn key_num(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// An 8-byte big-endian value, if that is what `v` holds.
pub(crate) fn read_u64(v: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes)
}

/// A counter's value; absent counts as 0.
pub(crate) fn read_counter(v: Option<impl AsRef<[u8]>>) -> u64 {
    v.and_then(|b| read_u64(b.as_ref())).unwrap_or(0)
}
