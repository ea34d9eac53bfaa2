//! Organizations, their addresses, staff members and their hashed API tokens.

use crate::codec::{decode, encode};
use crate::{Org, Staff, Store, StoreError};
use sha2::{Digest, Sha256};
use sled::transaction::ConflictableTransactionError::Abort;

/// Lowercases an address and drops a `+tag` from its local part.
fn base_address(address: &str) -> String {
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
    tx: &sled::transaction::TransactionalTree,
    org: &Org,
) -> sled::transaction::ConflictableTransactionResult<(), StoreError> {
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
        let value = encode(org)?;
        self.state
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
                if old.addresses.first() != org.addresses.first() {
                    return Err(Abort(StoreError::Invalid(
                        "the organization's first address cannot change".into(),
                    )));
                }
                for a in &old.addresses {
                    tx.remove(format!("addr/{}", base_address(a)).as_bytes())?;
                }
                claim_addresses(tx, org)?;
                tx.insert(org_key.as_bytes(), value.clone())?;
                Ok(())
            })
            .map_err(StoreError::from)?;
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

    /// Adds a new organization; fails if the slug or one of its addresses is taken.
    pub fn add_org(&self, org: &Org) -> Result<(), StoreError> {
        crate::check_slug(&org.slug).map_err(StoreError::Invalid)?;
        check_addresses(org)?;
        let org_key = format!("org/{}", org.slug);
        let value = encode(org)?;
        self.state
            .transaction(|tx| {
                use sled::transaction::ConflictableTransactionError::Abort;
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
            .map_err(StoreError::from)?;
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
        match self.state.get(format!("addr/{}", base_address(address)))? {
            Some(slug) => self.org(&String::from_utf8_lossy(&slug)),
            None => Ok(None),
        }
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
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(value))?
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
                    sled::transaction::ConflictableTransactionError<StoreError>,
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

    /// Removes a staff member with their password and API tokens; their sessions end.
    pub fn remove_staff(&self, email: &str) -> Result<(), StoreError> {
        if self.state.remove(format!("staff/{email}"))?.is_none() {
            return Err(StoreError::NotFound(format!("staff member {email}")));
        }
        self.state.remove(format!("pw/{email}"))?;
        let tokens: Vec<_> = self
            .state
            .scan_prefix("apitoken/")
            .filter_map(Result::ok)
            .filter(|(_, v)| v.as_ref() == email.as_bytes())
            .map(|(k, _)| k)
            .collect();
        for k in tokens {
            self.state.remove(k)?;
        }
        self.end_all_sessions(&crate::Principal::Staff {
            email: email.to_string(),
        })?;
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

    /// Whether an end user still wants automatic mail (acknowledgements and alerts).
    pub fn contact_alerts(&self, email: &str) -> Result<bool, StoreError> {
        Ok(self
            .state
            .get(format!(
                "contact-noalerts/{}",
                email.trim().to_ascii_lowercase()
            ))?
            .is_none())
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
        } else {
            self.state.insert(key, &[])?;
        }
        self.flush()
    }

    /// Records an API token (by its hash) for a staff member.
    pub fn add_api_token(&self, email: &str, token: &str) -> Result<(), StoreError> {
        let staff = self
            .staff(email)?
            .ok_or_else(|| StoreError::NotFound(format!("staff member {email}")))?;
        self.state.insert(
            format!("apitoken/{}", hash_token(token)),
            staff.email.as_bytes(),
        )?;
        self.flush()
    }

    /// The staff member an API token belongs to.
    pub fn staff_for_api_token(&self, token: &str) -> Result<Option<Staff>, StoreError> {
        match self.state.get(format!("apitoken/{}", hash_token(token)))? {
            Some(email) => self.staff(&String::from_utf8_lossy(&email)),
            None => Ok(None),
        }
    }
}
