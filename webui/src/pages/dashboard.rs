//! The staff dashboard: tickets by type and status (each count links to the filtered
//! list), what is assigned to and raised by me, who is online, and a chart of tickets
//! opened and closed per day over 30 days, drawn server-side as SVG.

use super::desk::label;
use super::{blocking, render, Chrome};
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use postdesk_store::{Status, Ticket, TicketType};
use std::collections::BTreeMap;

const STATUSES: [Status; 4] = [
    Status::Open,
    Status::Waiting,
    Status::Resolved,
    Status::Closed,
];
const TYPES: [TicketType; 3] = [TicketType::Question, TicketType::Incident, TicketType::Bug];
const DAYS: i64 = 30;
/// Active within this many minutes counts as online.
const ONLINE_MINUTES: i64 = 5;

struct Cell {
    count: usize,
    href: String,
}

struct CountRow {
    label: String,
    cells: Vec<Cell>,
}

struct Item {
    number: u64,
    summary: String,
    status: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    statuses: Vec<String>,
    counts: Vec<CountRow>,
    chart: String,
    assigned: Vec<Item>,
    raised: Vec<Item>,
    online: Vec<String>,
}

fn item(t: &Ticket) -> Item {
    Item {
        number: t.number,
        summary: t.summary.clone(),
        status: label(&t.status),
    }
}

pub async fn show(State(state): State<AppState>, me: StaffSession) -> Response {
    let store = state.store.clone();
    let staff = me.staff.clone();
    let now = state.clock.now();
    let gathered = blocking(move || {
        let mut counts: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        let cell = |ty: TicketType, st: Status| {
            (
                TYPES.iter().position(|x| *x == ty).unwrap_or(0),
                STATUSES.iter().position(|x| *x == st).unwrap_or(0),
            )
        };
        let first_day = (now - time::Duration::days(DAYS - 1)).date();
        let day_index = |d: time::Date| {
            let i = (d - first_day).whole_days();
            (0..DAYS).contains(&i).then_some(i as usize)
        };
        let (mut opened, mut closed) = (vec![0usize; DAYS as usize], vec![0usize; DAYS as usize]);
        if matches!(staff.role, postdesk_store::Role::Tech) {
            // A Tech's own tickets, read one at a time: counts and their days.
            store.visit_tickets(|t| {
                if !policy::can_view_ticket(&staff, t) {
                    return;
                }
                *counts.entry(cell(t.ticket_type, t.status)).or_default() += 1;
                if let Some(i) = day_index(t.created_at.date()) {
                    opened[i] += 1;
                }
                if let Some(i) = t.closed_at.and_then(|c| day_index(c.date())) {
                    closed[i] += 1;
                }
            })?;
        } else {
            // Everyone's tickets: from the counts kept with every ticket write.
            for (_, ty, st, n) in store.ticket_counts()? {
                *counts.entry(cell(ty, st)).or_default() += n as usize;
            }
            for (_, day, o, c) in store.daily_counts(first_day)? {
                if let Some(i) = day_index(day) {
                    opened[i] += o as usize;
                    closed[i] += c as usize;
                }
            }
        }
        let mut assigned = store.tickets_of(&staff.email, true, usize::MAX)?;
        assigned.retain(|t| matches!(t.status, Status::Open | Status::Waiting));
        assigned.truncate(10);
        let raised = store.tickets_of(&staff.email, false, 10)?;
        let online = store.staff_seen_since(now - time::Duration::minutes(ONLINE_MINUTES))?;
        Ok((counts, assigned, raised, opened, closed, online, first_day))
    })
    .await;
    let (counts, assigned, raised, opened, closed, online, first_day) = match gathered {
        Ok(g) => g,
        Err(r) => return r,
    };
    let rows = TYPES
        .iter()
        .enumerate()
        .map(|(ty, t)| {
            let name = label(t);
            let mut cells: Vec<Cell> = STATUSES
                .iter()
                .enumerate()
                .map(|(st, s)| Cell {
                    count: counts.get(&(ty, st)).copied().unwrap_or(0),
                    href: format!("/desk?type={name}&status={}", label(s)),
                })
                .collect();
            cells.push(Cell {
                count: cells.iter().map(|c| c.count).sum(),
                href: format!("/desk?type={name}"),
            });
            CountRow { label: name, cells }
        })
        .collect();
    render(&DashboardPage {
        chrome: Chrome::of(&me),
        statuses: STATUSES.iter().map(label).collect(),
        counts: rows,
        chart: chart(&opened, &closed, first_day),
        assigned: assigned.iter().map(item).collect(),
        raised: raised.iter().map(item).collect(),
        online,
    })
}

/// An SVG line chart of two daily series; only numbers and dates go into it.
fn chart(opened: &[usize], closed: &[usize], first_day: time::Date) -> String {
    let (w, h, left, bottom, top) = (720.0, 220.0, 40.0, 30.0, 10.0);
    let max = opened
        .iter()
        .chain(closed)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = (w - left - 10.0) / (opened.len().max(2) - 1) as f64;
    let y = |v: usize| top + (h - top - bottom) * (1.0 - v as f64 / max);
    let line = |series: &[usize]| {
        series
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", left + step * i as f64, y(*v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let last_day = first_day + time::Duration::days(opened.len() as i64 - 1);
    format!(
        concat!(
            r##"<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="Tickets opened and closed per day">"##,
            r##"<line x1="{left}" y1="{base:.1}" x2="{right}" y2="{base:.1}" stroke="#999"/>"##,
            r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{base:.1}" stroke="#999"/>"##,
            r##"<text x="4" y="{top_text}" font-size="11">{max}</text><text x="4" y="{base:.1}" font-size="11">0</text>"##,
            r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{opened}"/>"##,
            r##"<polyline fill="none" stroke="#2ca02c" stroke-width="2" points="{closed}"/>"##,
            r##"<text x="{left}" y="{label_y}" font-size="11">{first}</text><text x="{last_x}" y="{label_y}" font-size="11">{last}</text>"##,
            r##"<text x="{legend_x}" y="20" font-size="12" fill="#1f77b4">opened {opened_total}</text>"##,
            r##"<text x="{legend_x}" y="36" font-size="12" fill="#2ca02c">closed {closed_total}</text></svg>"##
        ),
        w = w,
        h = h,
        left = left,
        right = w - 10.0,
        top = top,
        top_text = top + 10.0,
        base = h - bottom,
        max = max as usize,
        opened = line(opened),
        closed = line(closed),
        label_y = h - 10.0,
        last_x = w - 80.0,
        first = first_day,
        last = last_day,
        legend_x = w - 130.0,
        opened_total = opened.iter().sum::<usize>(),
        closed_total = closed.iter().sum::<usize>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_both_series_scaled_to_the_maximum() {
        let day = time::Date::from_calendar_date(2026, time::Month::November, 1).expect("date");
        let mut opened = vec![0; 30];
        opened[29] = 4;
        let svg = chart(&opened, &[1; 30], day);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("opened 4") && svg.contains("closed 30"));
        assert!(svg.contains("2026-11-01") && svg.contains("2026-11-30"));
        // The highest point touches the top of the plot area.
        assert!(svg.contains(",10.0\"/>"), "{svg}");
    }
}
