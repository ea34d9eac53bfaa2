//! The reports page (owners, admins, managers): one organization or all, over a period
//! (the last 30 days unless chosen): opened and closed per day as a chart, by type,
//! category and assignee, response and resolution times, time and cost; and the period's
//! CSV exports.

use super::dashboard::chart;
use super::{choices, render, Choice, Chrome};
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use postdesk_desk::exports::given_day;
use postdesk_desk::reports::{span, work_text, Report, Spread, Tally, Work};
use postdesk_desk::DeskError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The report's default period: this many days up to today.
const DEFAULT_DAYS: i64 = 30;

struct TallyRow {
    label: String,
    opened: u64,
    closed: u64,
}

struct WorkRow {
    label: String,
    time: String,
    cost: String,
}

struct Times {
    count: usize,
    median: String,
    p90: String,
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    chrome: Chrome,
    orgs: Vec<Choice>,
    from: String,
    to: String,
    /// The filters as a query string, for the export links.
    query: String,
    chart: String,
    opened: u64,
    closed: u64,
    first_response: Times,
    resolution: Times,
    by_type: Vec<TallyRow>,
    by_category: Vec<TallyRow>,
    by_assignee: Vec<TallyRow>,
    work_by_staff: Vec<WorkRow>,
    work_by_org: Vec<WorkRow>,
}

#[derive(Deserialize, Default)]
pub struct ReportQuery {
    org: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn tallies(map: BTreeMap<String, Tally>) -> Vec<TallyRow> {
    map.into_iter()
        .map(|(label, t)| TallyRow {
            label,
            opened: t.opened,
            closed: t.closed,
        })
        .collect()
}

fn works(map: BTreeMap<String, Work>) -> Vec<WorkRow> {
    map.into_iter()
        .map(|(label, w)| {
            let (time, cost) = work_text(&w);
            WorkRow { label, time, cost }
        })
        .collect()
}

fn times(s: &Spread) -> Times {
    let text = |d: Option<time::Duration>| d.map(span).unwrap_or_else(|| "–".into());
    Times {
        count: s.count,
        median: text(s.median),
        p90: text(s.p90),
    }
}

/// A day from the query, or `default` when none was given.
fn day(given: Option<&str>, default: time::Date, name: &str) -> Result<time::Date, DeskError> {
    Ok(given_day(given, name)?.unwrap_or(default))
}

pub async fn show(
    State(state): State<AppState>,
    me: StaffSession,
    Query(q): Query<ReportQuery>,
) -> PageResult {
    let today = state.desk.now().date();
    let to = day(q.to.as_deref(), today, "to")?;
    let from = day(
        q.from.as_deref(),
        to - time::Duration::days(DEFAULT_DAYS - 1),
        "from",
    )?;
    let org = q.org.filter(|o| !o.trim().is_empty());
    let r: Report = state
        .desk
        .report(me.staff.clone(), org.clone(), from, to)
        .await?;
    let query = format!(
        "from={from}&to={to}{}",
        org.as_deref()
            .map(|o| format!("&org={}", super::desk::url_encode(o)))
            .unwrap_or_default()
    );
    Ok(render(&ReportsPage {
        chrome: Chrome::of(&me),
        orgs: choices(r.orgs.iter().map(String::as_str), &org),
        from: from.to_string(),
        to: to.to_string(),
        query,
        chart: chart(&r.opened_per_day, &r.closed_per_day, from),
        opened: r.totals.opened,
        closed: r.totals.closed,
        first_response: times(&r.first_response),
        resolution: times(&r.resolution),
        by_type: tallies(r.by_type),
        by_category: tallies(r.by_category),
        by_assignee: tallies(r.by_assignee),
        work_by_staff: works(r.work_by_staff),
        work_by_org: works(r.work_by_org),
    }))
}
