//! The audit log: who changed settings or roles, exported or deleted data, or signed in,
//! when and from where. Append-only, numbered, read newest first.

use crate::codec::{decode, encode, num_key};
use crate::tickets::bump;
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What an audit entry records.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// An organization's settings, monitors, keys or blocked senders changed.
    SettingsChanged,
    /// A staff member was invited, changed (role, rate) or removed.
    StaffChanged,
    /// Data left the desk (a CSV export, a person's data).
    Exported,
    /// A ticket was deleted (as spam too).
    Deleted,
    /// A staff member signed in (by password or a sign-in link).
    SignedIn,
    /// The daily retention run dropped originals, deleted closed tickets or deleted an
    /// organization deactivated long enough.
    Retention,
    /// The owner deactivated an organization (its data is deleted three months later).
    OrgDeactivated,
    /// The owner reactivated a deactivated organization.
    OrgReactivated,
    /// A person was erased (the entry names their pseudonym, never the address).
    Erasure,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    /// Position in the log (set when appended).
    pub seq: u64,
    pub action: AuditAction,
    /// The staff member who did it, or `command line` for the operator's commands.
    pub actor: String,
    /// The client's address as the web server saw it (through trusted proxies), or
    /// `command line`.
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// What exactly, in a line (never a message's text).
    pub detail: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Store {
    /// Appends `entry` (its `seq` is set here); returns it as stored.
    pub fn append_audit(&self, entry: &AuditEntry) -> Result<AuditEntry, StoreError> {
        let stored = self
            .state
            .transaction(|tx| {
                let e = AuditEntry {
                    seq: bump(tx, "counter/audit")?,
                    ..entry.clone()
                };
                tx.insert(
                    num_key("audit/", e.seq),
                    encode(&e).map_err(crate::engine::ConflictableTransactionError::Abort)?,
                )?;
                Ok(e)
            })
            .map_err(StoreError::from)?;
        self.flush()?;
        Ok(stored)
    }

    /// At most `limit` entries before `before` (all when `None`), newest first.
    pub fn audit_entries(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let end = num_key("audit/", before.unwrap_or(u64::MAX));
        self.state
            .range(num_key("audit/", 0)..end)
            .values()
            .rev()
            .take(limit)
            .map(|v| decode(&v?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::scratch_store;

    #[test]
    fn entries_are_numbered_and_read_newest_first() {
        let (s, _dir) = scratch_store("audit");
        let entry = |detail: &str| AuditEntry {
            seq: 0,
            action: AuditAction::SettingsChanged,
            actor: "ann@x.test".into(),
            from: "192.0.2.1".into(),
            org: Some("acme".into()),
            detail: detail.into(),
            at: OffsetDateTime::UNIX_EPOCH,
        };
        for d in ["one", "two", "three"] {
            s.append_audit(&entry(d)).expect("append");
        }
        let all = s.audit_entries(None, 10).expect("read");
        let details: Vec<_> = all.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(details, ["three", "two", "one"]);
        assert_eq!(all[0].seq, 3);
        let older = s.audit_entries(Some(3), 1).expect("read");
        assert_eq!(older[0].detail, "two");
    }
}
