//! Attachment contents, stored once by SHA-256: small ones in sled, large ones as files.

use crate::directory::data_hex;
use crate::files::Kind;
use crate::{Store, StoreError};
use sha2::{Digest, Sha256};

impl Store {
    /// Stores `bytes` unless already present; returns the hex SHA-256 naming them. A large
    /// one is a synced file when this returns, before any event can name it.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let hash = data_hex(&Sha256::digest(bytes));
        if bytes.len() > self.large() {
            if !self.files.exists(Kind::Blob, &hash) {
                self.files.write(Kind::Blob, &hash, bytes)?;
                self.files.sync_folder(Kind::Blob)?;
            }
        } else if !self.blobs.contains_key(hash.as_bytes())? {
            self.blobs.insert(hash.as_bytes(), bytes)?;
        }
        Ok(hash)
    }

    /// Deletes the contents named `sha256` (in sled or as a file); whether there were any.
    pub(crate) fn drop_blob(&self, sha256: &str) -> Result<bool, StoreError> {
        let held =
            self.blobs.remove(sha256.as_bytes())?.is_some() | self.files.exists(Kind::Blob, sha256);
        self.files.remove(Kind::Blob, sha256)?;
        Ok(held)
    }

    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.blobs.get_vec(sha256.as_bytes())? {
            return Ok(Some(v));
        }
        // Names come from callers (a download path): only a hash names a file.
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self.files.read(Kind::Blob, sha256)?)
    }
}
