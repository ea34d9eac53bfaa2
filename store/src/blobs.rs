//! Attachment contents, stored once by SHA-256.

use crate::directory::data_hex;
use crate::{Store, StoreError};
use sha2::{Digest, Sha256};

impl Store {
    /// Stores `bytes` unless already present; returns the hex SHA-256 naming them.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let hash = data_hex(&Sha256::digest(bytes));
        if !self.blobs.contains_key(hash.as_bytes())? {
            self.blobs.insert(hash.as_bytes(), bytes)?;
        }
        Ok(hash)
    }

    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.blobs.get(sha256.as_bytes())?.map(|v| v.to_vec()))
    }
}
