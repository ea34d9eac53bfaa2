//! DKIM signing keys, one per organization, kept in the data folder's store.

use crate::codec::{decode, encode};
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DkimKeyRecord {
    pub org: String,
    pub selector: String,
    /// "ed25519" or "rsa".
    pub algorithm: String,
    /// PKCS#8 DER.
    pub private_key: Vec<u8>,
    /// The `p=` value of the DNS record (base64).
    pub public_key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Store {
    /// Stores (or replaces) an organization's signing key.
    pub fn put_dkim_key(&self, key: &DkimKeyRecord) -> Result<(), StoreError> {
        if self.org(&key.org)?.is_none() {
            return Err(StoreError::NotFound(format!("organization {}", key.org)));
        }
        self.state
            .insert(format!("dkim/{}", key.org), encode(key)?)?;
        self.flush()
    }

    pub fn dkim_key(&self, org: &str) -> Result<Option<DkimKeyRecord>, StoreError> {
        self.state
            .get(format!("dkim/{org}"))?
            .map(|v| decode(&v))
            .transpose()
    }
}
