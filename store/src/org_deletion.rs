//! Deactivating an organization, reactivating it, and deleting what remains of it once its
//! tickets are gone (its record and addresses, then every record under its name and the
//! mail that went only to it).

use crate::codec::{decode, encode, key_num, num_key, read_u64};
use crate::engine::ConflictableTransactionError::Abort;
use crate::{Envelope, Org, Store, StoreError};
use time::OffsetDateTime;

/// Records an organization deletion still has to sweep (its record is gone already).
const DELETING: &str = "orgdeleting/";

/// Keys holding one organization's records: exact keys, then prefixes (each ends in `/`,
/// so `acme` never reaches `acme2`'s).
fn org_keys(slug: &str) -> ([String; 5], [String; 10]) {
    (
        [
            format!("dkim/{slug}"),
            format!("monitors/{slug}"),
            format!("monwatches/{slug}"),
            format!("autoclose/{slug}"),
            format!("dirsecret/{slug}"),
        ],
        [
            format!("dirjti/{slug}/"),
            format!("mon/{slug}/"),
            format!("monmark/{slug}/"),
            format!("block/{slug}/"),
            format!("daily/{slug}/"),
            format!("tcount/{slug}/"),
            format!("mid/{slug}/"),
            format!("midfrom/{slug}/"),
            format!("midby/{slug}/"),
            format!("ourmid/{slug}/"),
        ],
    )
}

impl Store {
    /// Deactivates organization `slug` at `at` (one already deactivated keeps its date) or
    /// reactivates it with `None`; returns it as it is now.
    pub fn set_org_deactivated(
        &self,
        slug: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<Org, StoreError> {
        let key = format!("org/{slug}");
        let now = self
            .state
            .transaction(|tx| {
                let Some(v) = tx.get(key.as_bytes())? else {
                    return Err(Abort(StoreError::NotFound(format!("organization {slug}"))));
                };
                let was: Org = decode(&v).map_err(Abort)?;
                let now = Org {
                    deactivated_at: at.and(was.deactivated_at.or(at)),
                    ..was
                };
                tx.insert(key.as_bytes(), encode(&now).map_err(Abort)?)?;
                Ok(now)
            })
            .map_err(StoreError::from);
        self.lookups.forget();
        let now = now?;
        if at.is_some() {
            self.end_portal_access(slug)?;
        }
        self.flush()?;
        Ok(now)
    }

    /// How many tickets organization `slug` has, from its counters.
    pub fn org_ticket_count(&self, slug: &str) -> Result<u64, StoreError> {
        let mut n = 0;
        for v in self.state.scan_prefix(format!("tcount/{slug}/")).values() {
            n += read_u64(&v?).unwrap_or(0);
        }
        Ok(n)
    }

    /// Deletes organization `slug` if it has no tickets left and `still` holds for it as
    /// the deletion commits (a reactivated organization stays): its record and addresses
    /// at once, then everything else under its name ([`Store::finish_org_deletions`]).
    /// Returns how many of its messages' records went, or `None` when it was kept.
    pub fn delete_org_if(
        &self,
        slug: &str,
        still: impl Fn(&Org) -> bool,
    ) -> Result<Option<usize>, StoreError> {
        if self.org_ticket_count(slug)? > 0 {
            return Ok(None);
        }
        let key = format!("org/{slug}");
        let marker = format!("{DELETING}{slug}");
        let removed = self
            .state
            .transaction(|tx| {
                let Some(v) = tx.get(key.as_bytes())? else {
                    return Ok(false);
                };
                let org: Org = decode(&v).map_err(Abort)?;
                if !still(&org) {
                    return Ok(false);
                }
                for a in &org.addresses {
                    tx.remove(format!("addr/{}", crate::directory::base_address(a)).as_bytes())?;
                }
                tx.remove(key.as_bytes())?;
                tx.insert(marker.as_bytes(), &[])?;
                Ok(true)
            })
            .map_err(StoreError::from);
        self.lookups.forget();
        if !removed? {
            return Ok(None);
        }
        self.sweep_org(slug).map(Some)
    }

    /// Sweeps the organizations whose deletion stopped half-way (a crash, a failed write).
    pub fn finish_org_deletions(&self) -> Result<(), StoreError> {
        for k in self.state.scan_prefix(DELETING).keys() {
            let k = k?;
            self.sweep_org(&String::from_utf8_lossy(&k[DELETING.len()..]))?;
        }
        Ok(())
    }

    /// Whether an organization of this slug is still being deleted (its slug is not free).
    pub(crate) fn org_being_deleted(&self, slug: &str) -> Result<bool, StoreError> {
        Ok(self.state.contains_key(format!("{DELETING}{slug}"))?)
    }

    /// Removes every record under organization `slug`'s name and the mail that went to no
    /// one else (its envelope, decisions and original; mail still waiting for the pipeline
    /// stays); the deletion marker goes last. Returns how many messages went.
    fn sweep_org(&self, slug: &str) -> Result<usize, StoreError> {
        let (exact, prefixes) = org_keys(slug);
        let mut batch = crate::engine::Batch::default();
        for k in exact {
            batch.remove(k.as_bytes());
        }
        for p in prefixes {
            for k in self.state.scan_prefix(p.as_bytes()).keys() {
                batch.remove(k?);
            }
        }
        self.state.apply_batch(batch)?;
        self.end_portal_access(slug)?;
        // Its decisions (mail that made no ticket, and those ticket deletions kept), its
        // outbound mail (sign-in links) with their files, sign-in mail still to send, the
        // ids of its directory tokens, and what an import of its mail remembered.
        let mut batch = crate::engine::Batch::default();
        for kv in self.state.scan_prefix("decision/") {
            let (k, v) = kv?;
            if decode::<crate::Decision>(&v).is_ok_and(|d| d.org == slug) {
                batch.remove(k);
            }
        }
        let mut delivered = Vec::new();
        for kv in self.state.scan_prefix("outbox/") {
            let (k, v) = kv?;
            if let Ok(item) = decode::<crate::OutboxItem>(&v) {
                if item.org == slug {
                    batch.remove(crate::outbox::pending_key(&item.key).as_bytes());
                    batch.remove(k);
                    delivered.push(item.key);
                }
            }
        }
        for kv in self.state.scan_prefix("signinreq/") {
            let (k, v) = kv?;
            if decode::<crate::SignInRequest>(&v).is_ok_and(|r| r.org == slug) {
                batch.remove(k);
            }
        }
        let jti = format!("/{slug}/");
        for k in self.state.scan_prefix("dirjtiexp/").keys() {
            let k = k?;
            if String::from_utf8_lossy(&k).contains(&jti) {
                batch.remove(k);
            }
        }
        self.state.apply_batch(batch)?;
        self.forget_mailbox(&crate::import_source(slug))?;
        for key in delivered {
            self.remove_delivered(&key)?;
        }
        let mut messages = 0;
        for kv in self.state.scan_prefix("envelope/") {
            let (k, v) = kv?;
            let id = key_num(&k).ok_or_else(|| StoreError::Corrupt("envelope key".into()))?;
            let envelope: Envelope = decode(&v)?;
            let mut orgs = envelope.orgs().peekable();
            let only_here = orgs.peek().is_some() && orgs.all(|o| o == slug);
            if !only_here || self.state.contains_key(num_key("pending/", id))? {
                continue;
            }
            // Its decisions went above (all of them are this organization's).
            self.state.remove(k)?;
            self.drop_original(id)?;
            messages += 1;
        }
        self.state.remove(format!("{DELETING}{slug}"))?;
        self.flush()?;
        Ok(messages)
    }
}
