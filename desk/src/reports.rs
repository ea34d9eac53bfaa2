//! Reports for owners, admins and managers: per organization (or all) and period, tickets
//! opened and closed (per day, by type, category and assignee), first-response and
//! resolution times (median and 90th percentile), and the time logged and its cost per
//! staff member and per organization.
//!
//! What one costs: a pass over the tickets (each decoded once, nothing held but the
//! figures) and the period's time entries through their index.

use crate::costs::{hourly_rate, money};
use crate::exports::resolved_at;
use crate::{policy, Desk, DeskError, DeskResult};
use postdesk_store::{Change, Staff};
use std::collections::{BTreeMap, HashMap};
use time::{Date, Duration, OffsetDateTime, Time};

/// The longest period a report covers: its daily series stays readable.
const MAX_REPORT_DAYS: i64 = 366;

/// Opened and closed tickets of one group (a type, a category, an assignee).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub opened: u64,
    pub closed: u64,
}

/// The middle and the 90th percentile of some durations, and how many there were.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Spread {
    pub count: usize,
    pub median: Option<Duration>,
    pub p90: Option<Duration>,
}

impl Spread {
    /// Nearest-rank percentiles of `values` (sorted here).
    fn of(mut values: Vec<Duration>) -> Spread {
        values.sort();
        let rank = |p: usize| {
            (!values.is_empty()).then(|| values[(values.len() * p).div_ceil(100).max(1) - 1])
        };
        Spread {
            count: values.len(),
            median: rank(50),
            p90: rank(90),
        }
    }
}

/// Minutes logged and what they cost (cents), for one staff member or organization.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Work {
    pub minutes: u64,
    pub cost_cents: u64,
}

pub struct Report {
    pub org: Option<String>,
    pub from: Date,
    pub to: Date,
    /// Per day from `from` to `to`: tickets opened, and resolved or closed.
    pub opened_per_day: Vec<usize>,
    pub closed_per_day: Vec<usize>,
    pub totals: Tally,
    pub by_type: BTreeMap<String, Tally>,
    pub by_category: BTreeMap<String, Tally>,
    /// "(nobody)" for tickets without an assignee.
    pub by_assignee: BTreeMap<String, Tally>,
    /// From opening to the first public staff answer, for tickets opened in the period.
    pub first_response: Spread,
    /// From opening to being resolved or closed, for tickets done in the period.
    pub resolution: Spread,
    pub work_by_staff: BTreeMap<String, Work>,
    pub work_by_org: BTreeMap<String, Work>,
    /// Every organization's slug, for the filter.
    pub orgs: Vec<String>,
}

/// How a duration reads in a report: `3 d 4 h`, `5 h 12 min`, `7 min`.
pub fn span(d: Duration) -> String {
    let minutes = d.whole_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, _) => format!("{hours} h {mins} min"),
        _ => format!("{days} d {hours} h"),
    }
}

/// [`Work`] as a report shows it: hours:minutes and an amount.
pub fn work_text(w: &Work) -> (String, String) {
    (
        format!("{}:{:02}", w.minutes / 60, w.minutes % 60),
        money(w.cost_cents),
    )
}

impl Desk {
    /// The report on `org` (all organizations when `None`) for the days `from` to `to`
    /// (UTC, inclusive; at most [`MAX_REPORT_DAYS`]).
    pub async fn report(
        &self,
        staff: Staff,
        org: Option<String>,
        from: Date,
        to: Date,
    ) -> DeskResult<Report> {
        policy::require_reports(&staff)?;
        let days = (to - from).whole_days() + 1;
        if !(1..=MAX_REPORT_DAYS).contains(&days) {
            return Err(DeskError::Invalid(format!(
                "A report covers 1 to {MAX_REPORT_DAYS} days, from a day to a later one."
            )));
        }
        let start = from.with_time(Time::MIDNIGHT).assume_utc();
        let end = start
            .checked_add(Duration::days(days))
            .ok_or_else(|| DeskError::Invalid("That period is out of range.".into()))?;
        // A report reads every ticket: it takes a place among the whole-store reads.
        let running = self.whole_store_read()?;
        self.run(move |desk| {
            let _running = running;
            let store = &desk.store;
            let in_period = |t: OffsetDateTime| t >= start && t < end;
            let day = |t: OffsetDateTime| (t.date() - from).whole_days() as usize;
            let mut r = Report {
                org: org.clone(),
                from,
                to,
                opened_per_day: vec![0; days as usize],
                closed_per_day: vec![0; days as usize],
                totals: Tally::default(),
                by_type: BTreeMap::new(),
                by_category: BTreeMap::new(),
                by_assignee: BTreeMap::new(),
                first_response: Spread::default(),
                resolution: Spread::default(),
                work_by_staff: BTreeMap::new(),
                work_by_org: BTreeMap::new(),
                orgs: store.orgs()?.into_iter().map(|o| o.slug).collect(),
            };
            let (mut first_response, mut resolution) = (Vec::new(), Vec::new());
            let mut org_of: HashMap<u64, String> = HashMap::new();
            for t in store.all_tickets() {
                let t = t?;
                if org.as_ref().is_some_and(|o| *o != t.org) {
                    continue;
                }
                let opened = in_period(t.created_at);
                let done = resolved_at(&t).filter(|at| in_period(*at));
                if !opened && done.is_none() {
                    continue;
                }
                let groups = [
                    (&mut r.by_type, t.ticket_type.as_str().to_string()),
                    (
                        &mut r.by_category,
                        t.category.clone().unwrap_or_else(|| "(none)".into()),
                    ),
                    (
                        &mut r.by_assignee,
                        t.assignee.clone().unwrap_or_else(|| "(nobody)".into()),
                    ),
                ];
                for (map, key) in groups {
                    let tally = map.entry(key).or_default();
                    tally.opened += u64::from(opened);
                    tally.closed += u64::from(done.is_some());
                }
                if opened {
                    r.totals.opened += 1;
                    r.opened_per_day[day(t.created_at)] += 1;
                    if let Some(first) = t.first_response_at {
                        first_response.push(first - t.created_at);
                    }
                }
                if let Some(at) = done {
                    r.totals.closed += 1;
                    r.closed_per_day[day(at)] += 1;
                    resolution.push(at - t.created_at);
                }
                org_of.insert(t.number, t.org.clone());
            }
            r.first_response = Spread::of(first_response);
            r.resolution = Spread::of(resolution);
            let people = store.staff_list()?;
            for e in store.time_entries(start, end - Duration::nanoseconds(1)) {
                let e = e?;
                let Some(Change::TimeSpent(m)) = e.change else {
                    continue;
                };
                let ticket_org = match org_of.get(&e.ticket) {
                    Some(o) => o.clone(),
                    None => match store.ticket(e.ticket)? {
                        Some(t) => t.org,
                        None => continue,
                    },
                };
                if org.as_ref().is_some_and(|o| *o != ticket_org) {
                    continue;
                }
                let rate = hourly_rate(&people, &e.author);
                let minutes = u64::from(m);
                for w in [
                    r.work_by_staff.entry(e.author.clone()).or_default(),
                    r.work_by_org.entry(ticket_org).or_default(),
                ] {
                    w.minutes += minutes;
                    w.cost_cents += minutes * rate / 60;
                }
            }
            Ok(r)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mins = |v: &[i64]| v.iter().map(|m| Duration::minutes(*m)).collect::<Vec<_>>();
        let s = Spread::of(mins(&[10, 1, 5, 3, 8, 2, 9, 4, 7, 6]));
        assert_eq!(s.count, 10);
        assert_eq!(s.median, Some(Duration::minutes(5)));
        assert_eq!(s.p90, Some(Duration::minutes(9)));
        let one = Spread::of(mins(&[42]));
        assert_eq!(
            (one.median, one.p90),
            (Some(Duration::minutes(42)), Some(Duration::minutes(42)))
        );
        assert_eq!(Spread::of(vec![]).median, None);
    }

    #[test]
    fn spans_read_in_the_largest_units() {
        assert_eq!(span(Duration::minutes(7)), "7 min");
        assert_eq!(span(Duration::minutes(312)), "5 h 12 min");
        assert_eq!(span(Duration::minutes(4560)), "3 d 4 h");
    }
}
