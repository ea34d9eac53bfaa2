//! Retention: once a day on the desk's clock, each organization's settings are applied:
//! originals older than it keeps them are dropped (the tickets' text stays) and tickets
//! closed longer ago than it keeps them are deleted, like a deletion by hand. Each run
//! that does something is in the audit log, per organization, with its counts.

use crate::audit::{AuditAction, Done};
use crate::{Desk, DeskResult};
use postdesk_store::Status;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

/// Who retention is in the log and the audit log.
pub const RETENTION_ACTOR: &str = "retention";

impl Desk {
    /// Runs retention unless it ran today (UTC, on the desk's clock).
    pub(crate) fn retention_if_due(&self, now: OffsetDateTime) -> DeskResult<()> {
        let today = now.date();
        if self.store.retention_last_run()?.is_some_and(|d| d >= today) {
            return Ok(());
        }
        let orgs = self.store.orgs()?;
        let cutoffs: HashMap<String, OffsetDateTime> = orgs
            .iter()
            .filter_map(|o| {
                let days = o.retention.originals_days?;
                Some((o.slug.clone(), now - Duration::days(i64::from(days))))
            })
            .collect();
        let dropped = self.store.drop_originals(&cutoffs)?;
        let closed_before: HashMap<&str, OffsetDateTime> = orgs
            .iter()
            .filter_map(|o| {
                let months = o.retention.closed_months?;
                Some((
                    o.slug.as_str(),
                    now - Duration::days(30 * i64::from(months)),
                ))
            })
            .collect();
        let mut expired = Vec::new();
        if !closed_before.is_empty() {
            for t in self.store.all_tickets() {
                let t = t?;
                let cutoff = closed_before.get(t.org.as_str());
                if t.status == Status::Closed
                    && t.closed_at.zip(cutoff).is_some_and(|(at, c)| at < *c)
                {
                    expired.push((t.org, t.number));
                }
            }
        }
        let mut deleted: HashMap<String, usize> = HashMap::new();
        for (org, number) in expired {
            self.store
                .delete_ticket(number, RETENTION_ACTOR, now, None)?;
            *deleted.entry(org).or_default() += 1;
        }
        for org in &orgs {
            let (d, x) = (
                dropped.get(&org.slug).copied().unwrap_or(0),
                deleted.get(&org.slug).copied().unwrap_or(0),
            );
            if d + x > 0 {
                let detail = format!("{d} originals dropped, {x} closed tickets deleted");
                let done = Done::new(AuditAction::Retention, Some(&org.slug), detail);
                self.record_now(RETENTION_ACTOR, "server", done)?;
            }
        }
        self.store.set_retention_last_run(today)?;
        Ok(())
    }
}
