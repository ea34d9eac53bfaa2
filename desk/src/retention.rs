//! Retention: once a day on the desk's clock, each organization's settings are applied:
//! originals older than it keeps them are dropped (the tickets' text stays) and tickets
//! closed longer ago than it keeps them are deleted, like a deletion by hand, at most
//! [`DELETIONS_PER_TICK`] per tick so monitor alerts are not held up; an organization
//! deactivated [`Org::DELETION_GRACE_DAYS`] ago has its tickets deleted the same way, then
//! itself; the per-recipient counts of automatic mail older than a day are forgotten. Each
//! step that drops or deletes data is in the audit log at once, per organization, with its
//! counts.

use crate::audit::{AuditAction, Done};
use crate::{Desk, DeskResult};
use postdesk_store::{Org, Status, StoreError, Ticket};
use std::collections::{BTreeMap, HashMap};
use time::{Duration, OffsetDateTime};

/// Who retention is in the log and the audit log.
const RETENTION_ACTOR: &str = "retention";
/// Closed tickets one tick deletes at most; the rest wait for the next ticks.
const DELETIONS_PER_TICK: usize = 500;
/// Ticket numbers an audit entry names at most.
const NAMED: usize = 50;

/// Whether `t` is a closed ticket that has been closed since before `cutoff`: since its
/// status last became Closed (a ticket resolved long ago and closed yesterday is not).
fn closed_before(t: &Ticket, cutoff: OffsetDateTime) -> bool {
    t.status == Status::Closed && t.status_since.or(t.closed_at).is_some_and(|at| at < cutoff)
}

impl Desk {
    /// Runs the day's retention steps still to do (the day is UTC on the desk's clock; a
    /// clock moved back runs them again, which finds nothing new).
    pub(crate) fn retention_if_due(&self, now: OffsetDateTime) -> DeskResult<()> {
        let today = now.date();
        let due = |step| -> DeskResult<bool> { Ok(self.store.retention_day(step)? != Some(today)) };
        let mut any = false;
        for step in ["originals", "closed", "deactivated", "sent", "rates"] {
            any |= due(step)?;
        }
        if !any {
            return Ok(());
        }
        let orgs = self.store.orgs()?;
        if due("originals")? {
            self.drop_originals(&orgs, now)?;
            self.store.set_retention_day("originals", today)?;
        }
        if due("closed")? && self.delete_closed(&orgs, now)? < DELETIONS_PER_TICK {
            self.store.set_retention_day("closed", today)?;
        }
        if due("deactivated")? && self.delete_deactivated(&orgs, now)? {
            self.store.set_retention_day("deactivated", today)?;
        }
        if due("sent")? {
            self.store.forget_sent_before(now - Duration::days(1))?;
            self.store.set_retention_day("sent", today)?;
        }
        // Sign-in quotas kept in the store (several nodes) that are whole again, and
        // claims of nodes that died or of mail deleted meanwhile.
        if due("rates")? {
            self.store.sweep_rates()?;
            self.store.sweep_claims()?;
            self.store.set_retention_day("rates", today)?;
        }
        Ok(())
    }

    /// Deletes the organizations deactivated [`Org::DELETION_GRACE_DAYS`] ago: up to
    /// [`DELETIONS_PER_TICK`] of their tickets, then each one left without tickets. Whether
    /// all of them are gone.
    fn delete_deactivated(&self, orgs: &[Org], now: OffsetDateTime) -> DeskResult<bool> {
        self.store.finish_org_deletions()?;
        let expired = |o: &Org| o.deleted_on().is_some_and(|on| on <= now);
        let due: Vec<&str> = orgs
            .iter()
            .filter(|o| expired(o))
            .map(|o| o.slug.as_str())
            .collect();
        if due.is_empty() {
            return Ok(true);
        }
        let mut tickets = Vec::new();
        for t in self.store.all_tickets() {
            let t = t?;
            if due.contains(&t.org.as_str()) {
                tickets.push(t.number);
                if tickets.len() == DELETIONS_PER_TICK {
                    break;
                }
            }
        }
        // Checked again at each deletion: a reactivated organization keeps the rest.
        let still =
            |slug: &str| -> bool { matches!(self.store.org(slug), Ok(Some(o)) if expired(&o)) };
        let mut deleted: HashMap<String, usize> = HashMap::new();
        for number in &tickets {
            match self
                .store
                .delete_ticket_if(*number, RETENTION_ACTOR, now, None, |t| still(&t.org))
            {
                Ok(Some(d)) => *deleted.entry(d.org).or_default() += 1,
                Ok(None) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut all_gone = tickets.len() < DELETIONS_PER_TICK;
        for slug in due {
            let tickets = deleted.get(slug).copied().unwrap_or(0);
            let detail = match self.store.delete_org_if(slug, expired)? {
                Some(messages) => format!(
                    "organization deleted, three months after it was deactivated: \
                     {tickets} tickets and {messages} other messages"
                ),
                None if tickets > 0 => {
                    format!("deactivated organization: {tickets} tickets deleted")
                }
                None => {
                    all_gone &= !still(slug);
                    continue;
                }
            };
            all_gone &= !still(slug);
            let done = Done::new(AuditAction::Retention, Some(slug), detail);
            self.record_now(RETENTION_ACTOR, "server", done)?;
        }
        Ok(all_gone)
    }

    fn drop_originals(&self, orgs: &[Org], now: OffsetDateTime) -> DeskResult<()> {
        let cutoffs: HashMap<String, OffsetDateTime> = orgs
            .iter()
            .filter_map(|o| {
                let days = o.retention.originals_days?;
                Some((o.slug.clone(), now - Duration::days(i64::from(days))))
            })
            .collect();
        for (org, n) in self.store.drop_originals(&cutoffs)? {
            let done = Done::new(
                AuditAction::Retention,
                Some(&org),
                format!("{n} originals dropped"),
            );
            self.record_now(RETENTION_ACTOR, "server", done)?;
        }
        Ok(())
    }

    /// Deletes up to [`DELETIONS_PER_TICK`] expired closed tickets; how many it deleted.
    fn delete_closed(&self, orgs: &[Org], now: OffsetDateTime) -> DeskResult<usize> {
        let cutoffs: HashMap<&str, OffsetDateTime> = orgs
            .iter()
            .filter_map(|o| {
                let months = o.retention.closed_months?;
                Some((
                    o.slug.as_str(),
                    now - Duration::days(30 * i64::from(months)),
                ))
            })
            .collect();
        if cutoffs.is_empty() {
            return Ok(0);
        }
        let mut expired = Vec::new();
        for t in self.store.all_tickets() {
            let t = t?;
            if cutoffs
                .get(t.org.as_str())
                .is_some_and(|c| closed_before(&t, *c))
            {
                expired.push((t.org, t.number));
                if expired.len() == DELETIONS_PER_TICK {
                    break;
                }
            }
        }
        let mut deleted: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut count = 0;
        for (org, number) in expired {
            let Some(cutoff) = cutoffs.get(org.as_str()).copied() else {
                continue;
            };
            // Checked again as the deletion commits: a ticket reopened meanwhile stays.
            let still = |t: &Ticket| closed_before(t, cutoff);
            match self
                .store
                .delete_ticket_if(number, RETENTION_ACTOR, now, None, still)
            {
                Ok(Some(_)) => {
                    deleted.entry(org).or_default().push(number);
                    count += 1;
                }
                Ok(None) | Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    self.record_deletions(&deleted)?;
                    return Err(e.into());
                }
            }
        }
        self.record_deletions(&deleted)?;
        Ok(count)
    }

    fn record_deletions(&self, deleted: &BTreeMap<String, Vec<u64>>) -> DeskResult<()> {
        for (org, numbers) in deleted {
            let mut named: Vec<String> = numbers
                .iter()
                .take(NAMED)
                .map(|n| format!("#{n}"))
                .collect();
            if numbers.len() > NAMED {
                named.push(format!("and {} more", numbers.len() - NAMED));
            }
            let detail = format!(
                "{} closed tickets deleted: {}",
                numbers.len(),
                named.join(", ")
            );
            let done = Done::new(AuditAction::Retention, Some(org), detail);
            self.record_now(RETENTION_ACTOR, "server", done)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ticket;

    #[test]
    fn closed_counts_from_when_it_was_closed_not_resolved() {
        let day = |d: i64| OffsetDateTime::UNIX_EPOCH + Duration::days(d);
        let mut t = ticket("r@x");
        t.status = Status::Closed;
        t.closed_at = Some(day(0));
        t.status_since = Some(day(40));
        assert!(!closed_before(&t, day(31)));
        assert!(closed_before(&t, day(41)));
        t.status = Status::Resolved;
        assert!(!closed_before(&t, day(100)));
    }
}
