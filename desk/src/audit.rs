//! The audit log as the desk keeps it: the edges record what was done, by whom and from
//! where, once it is done; the owner reads it.

use crate::{policy, Desk, DeskResult};
use postdesk_store::Staff;
pub use postdesk_store::{AuditAction, AuditEntry};

/// What an audit entry says was done.
#[derive(Debug, Clone)]
pub struct Done {
    pub action: AuditAction,
    pub org: Option<String>,
    pub detail: String,
}

impl Done {
    pub fn new(action: AuditAction, org: Option<&str>, detail: impl Into<String>) -> Done {
        Done {
            action,
            org: org.map(str::to_string),
            detail: detail.into(),
        }
    }
}

impl Done {
    /// What deleting a ticket records: its number, and the sender blocked with it (no
    /// content: the ticket is gone).
    pub fn deleted(d: &postdesk_store::Deleted) -> Done {
        let detail = match &d.blocked {
            Some(sender) => format!("ticket #{} deleted as spam; {sender} blocked", d.ticket),
            None => format!("ticket #{} deleted", d.ticket),
        };
        Done::new(AuditAction::Deleted, Some(&d.org), detail)
    }

    /// What deactivating or reactivating organization `org` (as it is now) records.
    pub fn status_changed(org: &postdesk_store::Org) -> Done {
        match org.deleted_on() {
            Some(on) => Done::new(
                AuditAction::OrgDeactivated,
                Some(&org.slug),
                format!("deactivated; its data is deleted on {}", on.date()),
            ),
            None => Done::new(AuditAction::OrgReactivated, Some(&org.slug), "reactivated"),
        }
    }
}

/// The most entries one read returns.
const MAX_AUDIT_PAGE: usize = 1000;

impl Desk {
    /// Records that `actor` (a staff member's address, or `command line`) did `done`,
    /// from `from` (the client's address), now.
    pub async fn record(&self, actor: String, from: String, done: Done) -> DeskResult<()> {
        self.run(move |desk| desk.record_now(&actor, &from, done))
            .await
    }

    /// [`Desk::record`] for work already on the blocking pool (the operator's commands).
    pub(crate) fn record_now(&self, actor: &str, from: &str, done: Done) -> DeskResult<()> {
        // Every field is bounded: parts of it come from requests.
        let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        self.store.append_audit(&AuditEntry {
            seq: 0,
            action: done.action,
            actor: cut(actor, 254),
            from: cut(from, 64),
            org: done.org.as_deref().map(|o| cut(o, 40)),
            detail: cut(&done.detail, 300),
            at: self.now(),
        })?;
        Ok(())
    }

    /// The audit log, newest first, before entry `before` (the owner only).
    pub async fn audit_log(
        &self,
        staff: Staff,
        before: Option<u64>,
        limit: usize,
    ) -> DeskResult<Vec<AuditEntry>> {
        policy::require_audit_reader(&staff)?;
        let limit = limit.min(MAX_AUDIT_PAGE);
        self.run(move |desk| Ok(desk.store.audit_entries(before, limit)?))
            .await
    }
}
