//! The staff dashboard: tickets by type and status (each count links to the filtered
//! list), what is assigned to and raised by me, who is online, and a chart of tickets
//! opened and closed per day over 30 days, drawn server-side as SVG.

use super::desk::label;
use super::{render, Chrome};
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use postdesk_desk::dashboard::Dashboard;
use postdesk_desk::model::{Status, Ticket, TicketType};

const STATUSES: [Status; 4] = [
    Status::Open,
    Status::Waiting,
    Status::Resolved,
    Status::Closed,
];
const TYPES: [TicketType; 3] = [TicketType::Question, TicketType::Incident, TicketType::Bug];

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

pub async fn show(State(state): State<AppState>, me: StaffSession) -> PageResult {
    let Dashboard {
        counts,
        first_day,
        opened,
        closed,
        assigned,
        raised,
        online,
    } = state.desk.dashboard(me.staff.clone()).await?;
    let rows = TYPES
        .iter()
        .map(|t| {
            let name = label(t);
            let mut cells: Vec<Cell> = STATUSES
                .iter()
                .map(|s| Cell {
                    count: counts.get(&(t.as_str(), s.as_str())).copied().unwrap_or(0) as usize,
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
    Ok(render(&DashboardPage {
        chrome: Chrome::of(&me),
        statuses: STATUSES.iter().map(label).collect(),
        counts: rows,
        chart: chart(&opened, &closed, first_day),
        assigned: assigned.iter().map(item).collect(),
        raised: raised.iter().map(item).collect(),
        online,
    }))
}

/// An SVG line chart of two daily series; only numbers and dates go into it.
pub(super) fn chart(opened: &[usize], closed: &[usize], first_day: time::Date) -> String {
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
