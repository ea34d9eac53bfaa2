//! Web access: staff password hashes, emailed sign-in links (magic links) with an expiry
//! and a use limit, and sessions. Links and session ids are stored only as hashes, each
//! indexed by its principal so signing out everywhere can end and void them all.

use crate::codec::{decode, encode};
use crate::directory::hash_token;
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who a sign-in link or a session stands for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    Staff {
        email: String,
    },
    /// An end user in one organization's portal.
    Portal {
        org: String,
        email: String,
    },
}

impl Principal {
    /// A key naming the principal, for the index of its sessions.
    fn key(&self) -> String {
        match self {
            Principal::Staff { email } => format!("staff:{email}"),
            Principal::Portal { org, email } => format!("portal:{org}:{email}"),
        }
    }
}

/// An emailed sign-in link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoginLink {
    pub principal: Principal,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub uses_left: u32,
}

/// Why a sign-in link was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    Unknown,
    Expired,
    UsedUp,
}

/// A signed-in browser.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebSession {
    pub principal: Principal,
    /// The token every form of this session must carry.
    pub csrf: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl Store {
    pub fn set_password_hash(&self, email: &str, hash: &str) -> Result<(), StoreError> {
        if self.staff(email)?.is_none() {
            return Err(StoreError::NotFound(format!("staff member {email}")));
        }
        self.state.insert(format!("pw/{email}"), hash.as_bytes())?;
        self.flush()
    }

    pub fn password_hash(&self, email: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .state
            .get(format!("pw/{email}"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Records a sign-in link under the hash of its secret `token`.
    pub fn add_login_link(&self, token: &str, link: &LoginLink) -> Result<(), StoreError> {
        let hash = hash_token(token);
        let mut batch = crate::engine::Batch::default();
        batch.insert(format!("link/{hash}").as_bytes(), encode(link)?);
        batch.insert(
            format!("linkby/{}/{hash}", link.principal.key()).as_bytes(),
            &[],
        );
        self.state.apply_batch(batch)?;
        self.flush()
    }

    /// Voids every sign-in link issued to `principal` that has not expired yet. Returns
    /// how many were voided.
    pub fn revoke_login_links(&self, principal: &Principal) -> Result<usize, StoreError> {
        let n = self.drop_indexed("linkby/", "link/", &format!("{}/", principal.key()))?;
        self.flush()?;
        Ok(n)
    }

    /// Ends every session of organization `org`'s portal and voids its sign-in links.
    pub(crate) fn end_portal_access(&self, org: &str) -> Result<(), StoreError> {
        let portal = format!("portal:{org}:");
        self.drop_indexed("sessby/", "session/", &portal)?;
        self.drop_indexed("linkby/", "link/", &portal)?;
        Ok(())
    }

    /// Removes the records `<of><hash>` that the index `<by><principal key>/<hash>` lists
    /// for principal keys starting with `principal`, and those index entries; how many.
    fn drop_indexed(&self, by: &str, of: &str, principal: &str) -> Result<usize, StoreError> {
        let mut batch = crate::engine::Batch::default();
        let mut n = 0;
        for k in self
            .state
            .scan_prefix(format!("{by}{principal}").as_bytes())
            .keys()
        {
            let k = k?;
            if let Some((_, hash)) = String::from_utf8_lossy(&k).rsplit_once('/') {
                batch.remove(format!("{of}{hash}").as_bytes());
            }
            batch.remove(k);
            n += 1;
        }
        self.state.apply_batch(batch)?;
        Ok(n)
    }

    /// Indexes sign-in links stored before links were indexed by principal (once per data
    /// folder), dropping the expired ones on the way.
    pub(crate) fn ensure_link_index(&self) -> Result<(), StoreError> {
        const DONE: &str = "migrated/link-index";
        if self.state.get(DONE)?.is_some() {
            return Ok(());
        }
        let now = OffsetDateTime::now_utc();
        let mut batch = crate::engine::Batch::default();
        for item in self.state.scan_prefix("link/") {
            let (k, v) = item?;
            let hash = String::from_utf8_lossy(&k["link/".len()..]).into_owned();
            match decode::<LoginLink>(&v) {
                Ok(link) if link.expires_at > now => batch.insert(
                    format!("linkby/{}/{hash}", link.principal.key()).as_bytes(),
                    &[],
                ),
                _ => batch.remove(k),
            }
        }
        batch.insert(DONE, &[]);
        self.state.apply_batch(batch)?;
        self.flush()
    }

    /// Uses a sign-in link once, if it is known, unexpired at `now` and not used up.
    pub fn use_login_link(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Result<Principal, LinkRefusal>, StoreError> {
        let key = format!("link/{}", hash_token(token));
        let outcome = self
            .state
            .transaction(|tx| {
                let Some(v) = tx.get(key.as_bytes())? else {
                    return Ok(Err(LinkRefusal::Unknown));
                };
                let mut link: LoginLink =
                    decode(&v).map_err(crate::engine::ConflictableTransactionError::Abort)?;
                if now >= link.expires_at {
                    return Ok(Err(LinkRefusal::Expired));
                }
                if link.uses_left == 0 {
                    return Ok(Err(LinkRefusal::UsedUp));
                }
                link.uses_left -= 1;
                tx.insert(
                    key.as_bytes(),
                    encode(&link).map_err(crate::engine::ConflictableTransactionError::Abort)?,
                )?;
                Ok(Ok(link.principal))
            })
            .map_err(StoreError::from)?;
        self.flush()?;
        Ok(outcome)
    }

    /// Starts a session under the hash of its secret `id`.
    pub fn add_session(&self, id: &str, session: &WebSession) -> Result<(), StoreError> {
        let hash = hash_token(id);
        self.state
            .insert(format!("session/{hash}"), encode(session)?)?;
        self.state
            .insert(format!("sessby/{}/{hash}", session.principal.key()), &[])?;
        self.flush()
    }

    /// The session with this id, if it exists and has not expired at `now`.
    pub fn session(&self, id: &str, now: OffsetDateTime) -> Result<Option<WebSession>, StoreError> {
        let Some(v) = self.state.get(format!("session/{}", hash_token(id)))? else {
            return Ok(None);
        };
        let s: WebSession = decode(&v)?;
        Ok((now < s.expires_at).then_some(s))
    }

    pub fn end_session(&self, id: &str) -> Result<(), StoreError> {
        let hash = hash_token(id);
        if let Some(v) = self.state.remove(format!("session/{hash}"))? {
            let s: WebSession = decode(&v)?;
            self.state
                .remove(format!("sessby/{}/{hash}", s.principal.key()))?;
        }
        self.flush()
    }

    /// Notes that a staff member was active at `at` (for "online now").
    pub fn touch_staff(&self, email: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let ns = u64::try_from(at.unix_timestamp_nanos()).unwrap_or(0);
        self.state
            .insert(format!("seen/{email}"), &ns.to_be_bytes())?;
        Ok(())
    }

    /// Staff members active at or after `since`.
    pub fn staff_seen_since(&self, since: OffsetDateTime) -> Result<Vec<String>, StoreError> {
        let floor = u64::try_from(since.unix_timestamp_nanos()).unwrap_or(0);
        let mut out = Vec::new();
        for item in self.state.scan_prefix("seen/") {
            let (k, v) = item?;
            if crate::codec::read_u64(&v).is_some_and(|ns| ns >= floor) {
                out.push(String::from_utf8_lossy(&k["seen/".len()..]).into_owned());
            }
        }
        Ok(out)
    }

    /// Signs `principal` out everywhere. Returns how many sessions ended.
    pub fn end_all_sessions(&self, principal: &Principal) -> Result<usize, StoreError> {
        let n = self.drop_indexed("sessby/", "session/", &format!("{}/", principal.key()))?;
        self.flush()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_voids_every_link_of_the_principal_old_ones_too() {
        let dir = std::env::temp_dir().join(format!("postdesk-access-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = crate::testing::open(&dir).expect("open");
        let now = OffsetDateTime::now_utc();
        let link = |email: &str| LoginLink {
            principal: Principal::Staff {
                email: email.into(),
            },
            expires_at: now + time::Duration::hours(12),
            uses_left: 5,
        };
        s.add_login_link("new", &link("ann@x.test")).expect("link");
        s.add_login_link("bob", &link("bob@x.test")).expect("link");
        // A link stored before links were indexed by principal, found again on open.
        s.state
            .insert(
                format!("link/{}", hash_token("old")),
                encode(&link("ann@x.test")).expect("encode"),
            )
            .expect("old link");
        s.state.remove("migrated/link-index").expect("marker");
        drop(s);
        let s = crate::testing::open(&dir).expect("reopen");
        let ann = Principal::Staff {
            email: "ann@x.test".into(),
        };
        assert_eq!(s.revoke_login_links(&ann).expect("revoke"), 2);
        for token in ["new", "old"] {
            assert_eq!(
                s.use_login_link(token, now).expect("use"),
                Err(LinkRefusal::Unknown)
            );
        }
        assert!(s.use_login_link("bob", now).expect("use").is_ok());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
