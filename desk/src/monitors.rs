//! Monitors & alerts: an organization's monitors and auto-close (owners and admins set
//! them, managers look) and the tick that raises one alert per ticket, monitor and
//! episode. (What a monitor matches now is the desk list's alert filter, `lists.rs`.)
//!
//! A tick also closes resolved tickets left without a reply for the organization's
//! auto-close days (off unless set).
//!
//! What a tick reads: the tickets whose last write put a watched time behind the scan
//! marks (a due date, a reopened ticket's old times), then, per monitor, the index
//! entries whose watched time crossed its threshold since its last tick. It never reads
//! a ticket that did neither.

use crate::{policy, Desk, DeskError, DeskResult};
use postdesk_store::{Monitor, Staff, Store, StoreError, Ticket};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

/// Tickets a tick reads per batch of written ones.
const WRITTEN_BATCH: usize = 1000;
/// The most index entries one monitor's scan reads in a tick: a monitor added to an
/// organization whose tickets all match alerts them over several ticks, each bounded.
const CROSSINGS_PER_TICK: usize = 5000;

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Monitors looked at, over all organizations.
    pub monitors: usize,
    /// Tickets written since the last tick that were read.
    pub written: usize,
    /// Index entries that crossed a threshold since the last tick.
    pub crossed: usize,
    /// Alerts raised.
    pub raised: usize,
    /// Resolved tickets closed by auto-close.
    pub closed: usize,
}

/// An organization's monitors and auto-close setting, as settings and the API show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Automation {
    pub monitors: Vec<Monitor>,
    /// Resolved tickets close after this many days without a reply; `None`: never.
    pub auto_close_days: Option<u32>,
}

impl Desk {
    /// An organization's monitors and auto-close (owners, admins and managers).
    pub async fn monitors(&self, staff: Staff, org: String) -> DeskResult<Automation> {
        self.run(move |desk| {
            policy::require_settings_view(&staff)?;
            desk.require_org(&org)?;
            Ok(Automation {
                monitors: desk.store.monitors(&org)?,
                auto_close_days: desk.store.auto_close_days(&org)?,
            })
        })
        .await
    }

    /// Replaces an organization's monitors and, when given, its auto-close setting
    /// (owners and admins); anything wrong changes nothing.
    pub async fn set_monitors(
        &self,
        staff: Staff,
        org: String,
        monitors: Vec<Monitor>,
        auto_close_days: Option<Option<u32>>,
    ) -> DeskResult<()> {
        self.run(move |desk| {
            policy::require_settings_edit(&staff)?;
            desk.require_org(&org)?;
            desk.store
                .set_automation(&org, &monitors, auto_close_days)
                .map_err(|e| match e {
                    StoreError::Invalid(why) => DeskError::Invalid(why),
                    other => other.into(),
                })
        })
        .await
    }

    /// Whether this node runs monitors and retention now: always alone; of nodes sharing
    /// a store, one at a time (keep the answer while ticking, see `Leadership`).
    pub async fn lead_monitors(&self) -> DeskResult<Option<crate::model::Leadership>> {
        self.run(|desk| Ok(desk.store.lead("monitors")?)).await
    }

    /// Runs one tick at the desk's clock, and retention when it is due (once a day).
    pub async fn monitor_tick(&self) -> DeskResult<TickReport> {
        self.run(|desk| {
            let now = desk.now();
            let report = tick(&desk.store, now)?;
            desk.retention_if_due(now)?;
            Ok(report)
        })
        .await
    }

    pub(crate) fn require_org(&self, org: &str) -> DeskResult<()> {
        match self.store.org(org)? {
            Some(_) => Ok(()),
            None => Err(DeskError::NotFound(format!("No organization {org}."))),
        }
    }
}

/// One tick at `now`: see the module's comment for what it reads. A deactivated
/// organization's monitors and auto-close rest (their marks wait for a reactivation).
fn tick(store: &Store, now: OffsetDateTime) -> Result<TickReport, StoreError> {
    let resting: HashSet<String> = store
        .orgs()?
        .into_iter()
        .filter(|o| o.deactivated_at.is_some())
        .map(|o| o.slug)
        .collect();
    let all: HashMap<String, Vec<Monitor>> = store
        .all_monitors()?
        .into_iter()
        .filter(|(org, _)| !resting.contains(org))
        .collect();
    let mut report = TickReport {
        monitors: all.values().map(Vec::len).sum(),
        ..TickReport::default()
    };
    let mut after = None;
    loop {
        let batch = store.written_tickets(after, WRITTEN_BATCH)?;
        for w in &batch {
            report.written += 1;
            if let Some(t) = store.ticket(w.number)? {
                for m in all.get(&t.org).into_iter().flatten() {
                    if m.matches(&t, now) {
                        report.raised += usize::from(raise(store, &t, m, now)?);
                    } else {
                        store.end_episode(t.number, m)?;
                    }
                }
            }
            store.clear_written(w)?;
        }
        match batch.last() {
            Some(last) if batch.len() == WRITTEN_BATCH => after = Some(last.number),
            _ => break,
        }
    }
    for (org, monitors) in &all {
        for m in monitors {
            let c = store.crossings(org, m, now, CROSSINGS_PER_TICK)?;
            for n in &c.tickets {
                report.crossed += 1;
                if let Some(t) = store.ticket(*n)?.filter(|t| m.matches(t, now)) {
                    report.raised += usize::from(raise(store, &t, m, now)?);
                }
            }
            // Moved after the alerts: a tick stopped halfway scans them again, and the
            // records keep it from alerting twice.
            store.move_scan_mark(&c)?;
        }
    }
    for (org, days) in store.all_auto_close()? {
        if resting.contains(&org) {
            continue;
        }
        let c = store.resolved_crossings(&org, days, now, CROSSINGS_PER_TICK)?;
        for n in &c.tickets {
            report.crossed += 1;
            report.closed += usize::from(store.auto_close(*n, days, now)?.is_some());
        }
        store.move_scan_mark(&c)?;
    }
    Ok(report)
}

/// Raises `m`'s alert for `t` unless this episode has had it (or `t` is imported history
/// no one has touched here); whether it was raised.
fn raise(store: &Store, t: &Ticket, m: &Monitor, now: OffsetDateTime) -> Result<bool, StoreError> {
    if t.imported {
        return Ok(false);
    }
    let Some(episode) = m.episode(t) else {
        return Ok(false);
    };
    Ok(store.raise_alert(t.number, m, &episode, now)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{desk_with_clock, HandClock};
    use postdesk_store::{Change, MonitorKind, NewTicket, Org, TicketAction};
    use std::sync::Arc;
    use time::{Duration, OffsetDateTime};

    fn at(hours: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_796_000_000).expect("time") + Duration::hours(hours)
    }

    fn open(store: &Store, summary: &str, when: OffsetDateTime) -> u64 {
        store
            .open_ticket(&NewTicket::by_requester(
                "acme",
                "ann@example.com",
                summary,
                "help",
                when,
            ))
            .expect("open")
            .0
            .number
    }

    #[test]
    fn a_tick_reads_only_what_changed_or_crossed_and_alerts_once() {
        let clock = Arc::new(HandClock::default());
        let (desk, _dir) = desk_with_clock("monitor-tick", clock.clone());
        let store = &desk.store;
        store
            .add_org(&Org::new("acme", "Acme", vec!["acme@x.test".into()], at(0)))
            .expect("org");
        store
            .set_monitors(
                "acme",
                &[
                    Monitor::new(MonitorKind::Unassigned, Some(2)),
                    Monitor::new(MonitorKind::PastDue, None),
                ],
            )
            .expect("monitors");
        let a = open(store, "a", at(0));
        let b = open(store, "b", at(1));
        let first = tick(store, at(0)).expect("tick");
        assert_eq!((first.written, first.crossed, first.raised), (0, 0, 0));
        // Two hours after A, before B: A crosses, B does not.
        let r = tick(store, at(2) + Duration::minutes(1)).expect("tick");
        assert_eq!((r.written, r.crossed, r.raised), (0, 1, 1));
        let r = tick(store, at(3) + Duration::minutes(1)).expect("tick");
        assert_eq!((r.written, r.crossed, r.raised), (0, 1, 1));
        // Nothing changed or crossed: the tick reads no ticket.
        let idle = tick(store, at(3) + Duration::minutes(2)).expect("tick");
        assert_eq!((idle.written, idle.crossed, idle.raised), (0, 0, 0));
        // A due date set in the past sits behind the past-due mark: the written ticket
        // is looked at anyway.
        store
            .act_on_ticket(&TicketAction {
                ticket: b,
                author: "bo@x.test".into(),
                by_staff: true,
                text: None,
                attachments: vec![],
                changes: vec![Change::Due(Some("2020-01-01".into()))],
                at: at(4),
            })
            .expect("due");
        let r = tick(store, at(4)).expect("tick");
        assert_eq!((r.written, r.raised), (1, 1));
        let alerts: Vec<_> = [a, b]
            .iter()
            .flat_map(|n| store.events_for(*n).expect("events"))
            .filter_map(|e| e.monitor.map(|m| (e.ticket, m.kind)))
            .collect();
        assert_eq!(
            alerts,
            vec![
                (a, MonitorKind::Unassigned),
                (b, MonitorKind::Unassigned),
                (b, MonitorKind::PastDue)
            ]
        );
        // The desk's own tick runs on its clock.
        clock.set(at(5));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(rt.block_on(desk.monitor_tick()).expect("tick").raised, 0);
    }
}
