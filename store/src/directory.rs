//! Organizations, their addresses and the ids of their directory tokens already used;
//! staff members and their hashed API tokens.

use crate::codec::{decode, encode};
use crate::engine::ConflictableTransactionError::Abort;
use crate::{Org, Staff, Store, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Hex characters of a token's hash that name it in `postdesk token list`.
pub const TOKEN_ID_LEN: usize = 12;

/// What is stored for an API token (under `apitoken/<hash>`). Tokens made before this
/// record existed hold just the staff member's address, and still work.
#[derive(Serialize, Deserialize)]
struct ApiTokenRecord {
    email: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// An API token as the command line lists it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenInfo {
    /// The first `TOKEN_ID_LEN` hex characters of the token's hash.
    pub id: String,
    pub email: String,
    /// Unknown for tokens made before this was recorded.
    pub created_at: Option<OffsetDateTime>,
}

fn read_api_token(value: &[u8]) -> (String, Option<OffsetDateTime>) {
    match serde_json::from_slice::<ApiTokenRecord>(value) {
        Ok(r) => (r.email, Some(r.created_at)),
        Err(_) => (String::from_utf8_lossy(value).into_owned(), None),
    }
}

/// Lowercases an address and drops a `+tag` from its local part.
pub(crate) fn base_address(address: &str) -> String {
    let lower = address.trim().to_ascii_lowercase();
    match lower.split_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(l, _)| l);
            format!("{local}@{domain}")
        }
        None => lower,
    }
}

/// SHA-256 of a token, hex; tokens are only ever stored in this form.
pub fn hash_token(token: &str) -> String {
    data_hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn data_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Points each of the organization's addresses at it; an address another organization
/// holds aborts the transaction.
fn claim_addresses(
    tx: &crate::engine::TransactionalTree,
    org: &Org,
) -> crate::engine::ConflictableTransactionResult<(), StoreError> {
    for a in &org.addresses {
        let k = format!("addr/{}", base_address(a));
        if tx.get(k.as_bytes())?.is_some() {
            return Err(Abort(StoreError::Exists(format!("address {a}"))));
        }
        tx.insert(k.as_bytes(), org.slug.as_bytes())?;
    }
    Ok(())
}

fn check_addresses(org: &Org) -> Result<(), StoreError> {
    if org.addresses.is_empty() {
        return Err(StoreError::Invalid(
            "an organization needs at least one address".into(),
        ));
    }
    for a in &org.addresses {
        if !a.contains('@') || a.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(StoreError::Invalid(format!(
                "{a:?} is not an email address"
            )));
        }
    }
    Ok(())
}

impl Store {
    /// Saves changed settings of an existing organization; its addresses may change, but
    /// not to one another organization has. The slug and first address stay.
    pub fn update_org(&self, org: &Org) -> Result<(), StoreError> {
        check_addresses(org)?;
        let org_key = format!("org/{}", org.slug);
        let written = self
            .state
            .transaction(|tx| {
                let old: Org = match tx.get(org_key.as_bytes())? {
                    Some(v) => decode(&v).map_err(Abort)?,
                    None => {
                        return Err(Abort(StoreError::NotFound(format!(
                            "organization {}",
                            org.slug
                        ))))
                    }
                };
                // Deactivation has its own command; a settings save never changes it.
                let value = encode(&Org {
                    deactivated_at: old.deactivated_at,
                    ..org.clone()
                })
                .map_err(Abort)?;
                if old.addresses.first() != org.addresses.first() {
                    return Err(Abort(StoreError::Invalid(
                        "the organization's first address cannot change".into(),
                    )));
                }
                for a in &old.addresses {
                    tx.remove(format!("addr/{}", base_address(a)).as_bytes())?;
                }
                claim_addresses(tx, org)?;
                tx.insert(org_key.as_bytes(), value)?;
                Ok(())
            })
            .map_err(StoreError::from);
        self.lookups.forget();
        written?;
        self.flush()
    }

    /// Sets the secret that checks an organization's directory tokens (HS256).
    pub fn set_directory_secret(&self, slug: &str, secret: &[u8]) -> Result<(), StoreError> {
        if self.org(slug)?.is_none() {
            return Err(StoreError::NotFound(format!("organization {slug}")));
        }
        self.state.insert(format!("dirsecret/{slug}"), secret)?;
        self.flush()
    }

    pub fn directory_secret(&self, slug: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .state
            .get(format!("dirsecret/{slug}"))?
            .map(|v| v.to_vec()))
    }

    /// Uses a directory token's id (`jti`) for organization `slug`: true the first time,
    /// false if it was used before. Ids are kept (hashed) until their token's expiry
    /// (`expires`, unix seconds), then forgotten in order, so what is kept stays bounded by
    /// what can still be replayed.
    pub fn use_directory_token(
        &self,
        slug: &str,
        jti: &str,
        expires: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.forget_expired_directory_tokens(now)?;
        let hash = hash_token(jti);
        let key = format!("dirjti/{slug}/{hash}");
        let by_expiry = format!("dirjtiexp/{:020}/{slug}/{hash}", expires.max(0));
        let first = self
            .state
            .transaction(|tx| {
                if tx.get(key.as_bytes())?.is_some() {
                    return Ok(false);
                }
                tx.insert(key.as_bytes(), by_expiry.as_bytes())?;
                tx.insert(by_expiry.as_bytes(), &[])?;
                Ok(true)
            })
            .map_err(StoreError::from)?;
        self.flush()?;
        Ok(first)
    }

    fn forget_expired_directory_tokens(&self, now: i64) -> Result<(), StoreError> {
        let horizon = format!("dirjtiexp/{:020}", now.max(0));
        let mut batch = crate::engine::Batch::default();
        for k in self.state.scan_prefix("dirjtiexp/").keys() {
            let k = k?;
            if k.as_ref() >= horizon.as_bytes() {
                break;
            }
            // dirjtiexp/<expiry>/<slug>/<hash> indexes dirjti/<slug>/<hash>.
            let text = String::from_utf8_lossy(&k);
            if let Some((_, id)) = text["dirjtiexp/".len()..].split_once('/') {
                batch.remove(format!("dirjti/{id}").as_bytes());
            }
            batch.remove(k);
        }
        self.state.apply_batch(batch)?;
        Ok(())
    }

    /// Adds a new organization; fails if the slug or one of its addresses is taken.
    pub fn add_org(&self, org: &Org) -> Result<(), StoreError> {
        crate::check_slug(&org.slug).map_err(StoreError::Invalid)?;
        check_addresses(org)?;
        if self.org_being_deleted(&org.slug)? {
            return Err(StoreError::Exists(format!(
                "organization {} (still being deleted)",
                org.slug
            )));
        }
        let org_key = format!("org/{}", org.slug);
        let value = encode(org)?;
        let written = self
            .state
            .transaction(|tx| {
                use crate::engine::ConflictableTransactionError::Abort;
                if tx.get(org_key.as_bytes())?.is_some() {
                    return Err(Abort(StoreError::Exists(format!(
                        "organization {}",
                        org.slug
                    ))));
                }
                claim_addresses(tx, org)?;
                tx.insert(org_key.as_bytes(), value.clone())?;
                Ok(())
            })
            .map_err(StoreError::from);
        self.lookups.forget();
        written?;
        self.flush()
    }

    pub fn org(&self, slug: &str) -> Result<Option<Org>, StoreError> {
        self.state
            .get(format!("org/{slug}"))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.state
            .scan_prefix("org/")
            .map(|r| decode(&r?.1))
            .collect()
    }

    /// The organization an address (or its plus form) belongs to.
    pub fn org_for_address(&self, address: &str) -> Result<Option<Org>, StoreError> {
        let base = base_address(address);
        if let Some(known) = self.lookups.org(&base) {
            return Ok(known);
        }
        let generation = self.lookups.generation();
        let found = match self.state.get(format!("addr/{base}"))? {
            Some(slug) => self.org(&String::from_utf8_lossy(&slug))?,
            None => None,
        };
        self.lookups.keep_org(generation, &base, &found);
        Ok(found)
    }

    pub fn add_staff(&self, staff: &Staff) -> Result<(), StoreError> {
        let email = staff.email.trim().to_ascii_lowercase();
        if !email.contains('@') {
            return Err(StoreError::Invalid(format!(
                "{:?} is not an email address",
                staff.email
            )));
        }
        let mut staff = staff.clone();
        staff.email = email.clone();
        let key = format!("staff/{email}");
        let value = encode(&staff)?;
        self.state
            .compare_and_swap(key.as_bytes(), None, Some(&value[..]))?
            .map_err(|_| StoreError::Exists(format!("staff member {email}")))?;
        self.flush()
    }

    /// Saves a staff member's changed name, role or rate.
    pub fn update_staff(&self, staff: &Staff) -> Result<(), StoreError> {
        let key = format!("staff/{}", staff.email);
        if self.state.get(&key)?.is_none() {
            return Err(StoreError::NotFound(format!(
                "staff member {}",
                staff.email
            )));
        }
        self.state.insert(key, encode(staff)?)?;
        self.flush()
    }

    /// Makes `to` the owner and `from` (the owner until now) an admin, together.
    pub fn transfer_ownership(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (from_key, to_key) = (format!("staff/{from}"), format!("staff/{to}"));
        self.state
            .transaction(|tx| {
                let read = |k: &str| -> Result<
                    Staff,
                    crate::engine::ConflictableTransactionError<StoreError>,
                > {
                    let v = tx
                        .get(k.as_bytes())?
                        .ok_or_else(|| Abort(StoreError::NotFound(k.to_string())))?;
                    decode(&v).map_err(Abort)
                };
                let (mut old, mut new) = (read(&from_key)?, read(&to_key)?);
                if old.role != crate::Role::Owner {
                    return Err(Abort(StoreError::Invalid(format!(
                        "{from} is not the owner"
                    ))));
                }
                old.role = crate::Role::Admin;
                new.role = crate::Role::Owner;
                tx.insert(from_key.as_bytes(), encode(&old).map_err(Abort)?)?;
                tx.insert(to_key.as_bytes(), encode(&new).map_err(Abort)?)?;
                Ok(())
            })
            .map_err(StoreError::from)?;
        self.flush()
    }

    /// Removes a staff member with their password and API tokens; their sessions end and
    /// their sign-in links are void.
    pub fn remove_staff(&self, email: &str) -> Result<(), StoreError> {
        if self.state.remove(format!("staff/{email}"))?.is_none() {
            return Err(StoreError::NotFound(format!("staff member {email}")));
        }
        self.state.remove(format!("pw/{email}"))?;
        let tokens: Vec<_> = self
            .state
            .scan_prefix("apitoken/")
            .filter_map(Result::ok)
            .filter(|(_, v)| read_api_token(v).0 == email)
            .map(|(k, _)| k)
            .collect();
        for k in tokens {
            self.state.remove(k)?;
        }
        // Their bell: what it says of tickets is no longer theirs to read.
        self.forget_bell(email)?;
        let principal = crate::Principal::Staff {
            email: email.to_string(),
        };
        self.end_all_sessions(&principal)?;
        self.revoke_login_links(&principal)?;
        self.flush()
    }

    pub fn staff(&self, email: &str) -> Result<Option<Staff>, StoreError> {
        self.state
            .get(format!("staff/{}", email.trim().to_ascii_lowercase()))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn staff_list(&self) -> Result<Vec<Staff>, StoreError> {
        self.state
            .scan_prefix("staff/")
            .map(|r| decode(&r?.1))
            .collect()
    }

    /// Turns a staff member's mail alerts on or off.
    pub fn set_staff_alerts(&self, email: &str, on: bool) -> Result<(), StoreError> {
        let mut staff = self
            .staff(email)?
            .ok_or_else(|| StoreError::NotFound(format!("staff member {email}")))?;
        staff.alerts = on;
        self.state
            .insert(format!("staff/{}", staff.email), encode(&staff)?)?;
        self.flush()
    }

    /// Whether an end user still wants automatic mail (acknowledgements and alerts); an
    /// erased person's opt-out is kept under a keyed hash of the address.
    pub fn contact_alerts(&self, email: &str) -> Result<bool, StoreError> {
        let email = email.trim().to_ascii_lowercase();
        Ok(!self
            .state
            .contains_key(format!("contact-noalerts/{email}"))?
            && !self.state.contains_key(self.hashed_noalerts_key(&email)?)?)
    }

    pub fn set_contact_alerts(&self, email: &str, on: bool) -> Result<(), StoreError> {
        let email = email.trim().to_ascii_lowercase();
        if !email.contains('@') {
            return Err(StoreError::Invalid(format!(
                "{email:?} is not an email address"
            )));
        }
        let key = format!("contact-noalerts/{email}");
        if on {
            self.state.remove(key)?;
            self.state.remove(self.hashed_noalerts_key(&email)?)?;
        } else {
            self.state.insert(key, &[])?;
        }
        self.flush()
    }

    /// Records an API token (by its hash) for a staff member, created now; returns its id.
    pub fn add_api_token(&self, email: &str, token: &str) -> Result<String, StoreError> {
        let staff = self
            .staff(email)?
            .ok_or_else(|| StoreError::NotFound(format!("staff member {email}")))?;
        let hash = hash_token(token);
        let record = ApiTokenRecord {
            email: staff.email,
            created_at: OffsetDateTime::now_utc(),
        };
        self.state
            .insert(format!("apitoken/{hash}"), encode(&record)?)?;
        self.flush()?;
        Ok(hash[..TOKEN_ID_LEN].to_string())
    }

    /// The staff member an API token belongs to.
    pub fn staff_for_api_token(&self, token: &str) -> Result<Option<Staff>, StoreError> {
        match self.state.get(format!("apitoken/{}", hash_token(token)))? {
            Some(v) => self.staff(&read_api_token(&v).0),
            None => Ok(None),
        }
    }

    /// Every API token: its id, owner and creation date.
    pub fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, StoreError> {
        self.state
            .scan_prefix("apitoken/")
            .map(|item| {
                let (k, v) = item?;
                let hash = String::from_utf8_lossy(&k["apitoken/".len()..]).into_owned();
                let (email, created_at) = read_api_token(&v);
                Ok(ApiTokenInfo {
                    id: hash.chars().take(TOKEN_ID_LEN).collect(),
                    email,
                    created_at,
                })
            })
            .collect()
    }

    /// Revokes the one API token whose id (hash) starts with `id` (at least 6 hex
    /// characters); an id that names none or several changes nothing.
    pub fn revoke_api_token(&self, id: &str) -> Result<ApiTokenInfo, StoreError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < 6 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(format!(
                "{id:?} is not a token id (at least 6 hex characters, as `token list` shows)"
            )));
        }
        let matches: Vec<_> = self
            .state
            .scan_prefix(format!("apitoken/{id}"))
            .collect::<Result<_, _>>()?;
        let (key, value) = match matches.as_slice() {
            [one] => one,
            [] => return Err(StoreError::NotFound(format!("API token {id}"))),
            _ => {
                return Err(StoreError::Invalid(format!(
                    "{id} names {} tokens; give more of its characters",
                    matches.len()
                )))
            }
        };
        self.state.remove(key)?;
        self.flush()?;
        let (email, created_at) = read_api_token(value);
        Ok(ApiTokenInfo {
            id: String::from_utf8_lossy(&key["apitoken/".len()..])
                .chars()
                .take(TOKEN_ID_LEN)
                .collect(),
            email,
            created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::{scratch_store, Scratch};

    fn store(name: &str) -> (Store, Scratch) {
        let (store, dir) = scratch_store(&format!("directory-{name}"));
        store
            .add_staff(&Staff::new(
                "alex@x.test",
                "Alex",
                crate::Role::Admin,
                OffsetDateTime::now_utc(),
            ))
            .expect("staff");
        (store, dir)
    }

    #[test]
    fn api_tokens_are_listed_and_revoked_by_id() {
        let (s, _dir) = store("tokens");
        // A token stored before records had dates: the bare address.
        s.state
            .insert(
                format!("apitoken/{}", hash_token("pd_old")),
                b"alex@x.test".as_slice(),
            )
            .expect("old token");
        let id = s.add_api_token("alex@x.test", "pd_new").expect("token");
        assert_eq!(id, hash_token("pd_new")[..TOKEN_ID_LEN]);
        for t in ["pd_old", "pd_new"] {
            let who = s.staff_for_api_token(t).expect("read").map(|x| x.email);
            assert_eq!(who.as_deref(), Some("alex@x.test"), "{t}");
        }
        let list = s.api_tokens().expect("list");
        assert_eq!(list.len(), 2);
        let old = list.iter().find(|t| t.id != id).expect("old");
        assert_eq!((old.email.as_str(), old.created_at), ("alex@x.test", None));
        assert!(list.iter().any(|t| t.id == id && t.created_at.is_some()));
        // Bad, unknown and too short ids change nothing.
        assert!(s.revoke_api_token("zzzzzz").is_err());
        assert!(s.revoke_api_token("abc").is_err());
        let unknown = if id.starts_with("000000") {
            "ffffff"
        } else {
            "000000"
        };
        assert!(matches!(
            s.revoke_api_token(unknown),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(s.api_tokens().expect("list").len(), 2);
        assert_eq!(s.revoke_api_token(&id).expect("revoke").id, id);
        assert!(s.staff_for_api_token("pd_new").expect("read").is_none());
        assert!(s.staff_for_api_token("pd_old").expect("read").is_some());
        // Removing the staff member removes old-format tokens too.
        s.remove_staff("alex@x.test").expect("remove");
        assert!(s.api_tokens().expect("list").is_empty());
    }

    #[test]
    fn directory_token_ids_are_used_once_and_forgotten_after_expiry() {
        let (s, _dir) = store("jti");
        assert!(s
            .use_directory_token("acme", "j1", 1600, 1000)
            .expect("use"));
        assert!(!s
            .use_directory_token("acme", "j1", 1600, 1100)
            .expect("use"));
        // Another organization's id space is its own.
        assert!(s
            .use_directory_token("beta", "j1", 1600, 1100)
            .expect("use"));
        assert!(s
            .use_directory_token("acme", "j2", 1200, 1100)
            .expect("use"));
        // Once expired, an id is forgotten (its token is refused for its expiry anyway).
        assert!(s
            .use_directory_token("acme", "j3", 2300, 1700)
            .expect("use"));
        let kept = |prefix: &str| s.state.scan_prefix(prefix).count();
        assert_eq!((kept("dirjti/"), kept("dirjtiexp/")), (1, 1));
    }
}
