//! The staff desk's ticket list: newest activity first; filters by status (with counts),
//! type, organization and my relation; text search in summaries and messages; paging.

use super::{choices, render, Choice, Chrome};
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use postdesk_desk::lists::{ListQuery, TicketList, RELATIONS};
use postdesk_desk::model::{Status, TicketFilter, TicketType};
use serde::Deserialize;

const PAGE_SIZE: usize = 50;
pub(super) const STATUSES: [&str; 4] = ["open", "waiting", "resolved", "closed"];
pub(super) const TYPES: [&str; 3] = ["question", "incident", "bug"];

struct Row {
    number: u64,
    summary: String,
    status: String,
    ticket_type: String,
    org: String,
    requester: String,
    assignee: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "desk.html")]
struct DeskPage {
    chrome: Chrome,
    statuses: Vec<StatusChoice>,
    /// Tickets under the filters other than status.
    total: u64,
    types: Vec<Choice>,
    orgs: Vec<Choice>,
    relations: Vec<Choice>,
    /// The alert filter: one option per monitor, `org/id`, with what it watches for.
    alerts: Vec<AlertChoice>,
    q: String,
    search_capped: bool,
    tickets: Vec<Row>,
    prev_page: Option<String>,
    next_page: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct DeskQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    ticket_type: Option<String>,
    org: Option<String>,
    /// raised, assigned, following or cc: my relation to the ticket.
    mine: Option<String>,
    /// `org/monitor id`: the tickets that monitor matches now.
    alert: Option<String>,
    q: Option<String>,
    page: Option<usize>,
}

pub(super) fn label<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(super) fn short_time(t: time::OffsetDateTime) -> String {
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// An option of the alert filter.
struct AlertChoice {
    value: String,
    label: String,
    selected: bool,
}

/// A status option with how many tickets have it under the other filters.
struct StatusChoice {
    value: &'static str,
    selected: bool,
    count: u64,
}

pub async fn list(
    State(state): State<AppState>,
    me: StaffSession,
    Query(q): Query<DeskQuery>,
) -> PageResult {
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    // `org/monitor id`; anything else is no alert filter.
    let alert = nonempty(&q.alert).filter(|a| a.contains('/'));
    // The list opens on what needs work; "any" (an empty status) shows every ticket, and
    // so does an alert filter (a waiting ticket can alert).
    let status = match &q.status {
        None if alert.is_none() => Some(Status::Open.as_str().to_string()),
        given => nonempty(given),
    };
    let (status, ticket_type, org, text) = (
        status,
        nonempty(&q.ticket_type),
        nonempty(&q.org),
        nonempty(&q.q),
    );
    let relation = nonempty(&q.mine).filter(|r| RELATIONS.contains(&r.as_str()));
    let filter = TicketFilter {
        org: org.clone(),
        status: status.as_deref().and_then(|s| s.parse::<Status>().ok()),
        ticket_type: ticket_type
            .as_deref()
            .and_then(|t| t.parse::<TicketType>().ok()),
    };
    let page = q.page.unwrap_or(0).min(10_000);
    let TicketList {
        tickets,
        has_older,
        capped,
        counts,
        orgs,
        monitors,
    } = state
        .desk
        .ticket_list(
            me.staff.clone(),
            ListQuery {
                filter,
                alert: alert
                    .as_deref()
                    .and_then(|a| a.split_once('/'))
                    .map(|(org, id)| (org.to_string(), id.to_string())),
                relation: relation.clone(),
                text: text.clone(),
                page,
                page_size: PAGE_SIZE,
            },
        )
        .await?;
    let rows = tickets
        .into_iter()
        .map(|t| Row {
            number: t.number,
            summary: t.summary.clone(),
            status: label(&t.status),
            ticket_type: label(&t.ticket_type),
            org: t.org.clone(),
            requester: t.requester.clone(),
            assignee: t.assignee.clone().unwrap_or_default(),
            updated: short_time(t.updated_at),
        })
        .collect();
    let link = |p: usize| {
        let mut pairs = vec![];
        for (k, v) in [
            ("status", &status),
            ("type", &ticket_type),
            ("org", &org),
            ("mine", &relation),
            ("alert", &alert),
            ("q", &text),
        ] {
            if let Some(v) = v {
                pairs.push(format!("{k}={}", url_encode(v)));
            }
        }
        pairs.push(format!("page={p}"));
        format!("/desk?{}", pairs.join("&"))
    };
    Ok(render(&DeskPage {
        chrome: Chrome::of(&me),
        statuses: Status::ALL
            .iter()
            .zip(counts)
            .map(|(s, n)| StatusChoice {
                value: s.as_str(),
                selected: status.as_deref() == Some(s.as_str()),
                count: n,
            })
            .collect(),
        total: counts.iter().sum(),
        types: choices(TYPES, &ticket_type),
        orgs: choices(orgs.iter().map(String::as_str), &org),
        relations: choices(RELATIONS, &relation),
        alerts: monitors
            .iter()
            .map(|(org, m)| {
                let value = format!("{org}/{}", m.id());
                AlertChoice {
                    selected: alert.as_deref() == Some(value.as_str()),
                    label: format!("{org}: {}", m.describe()),
                    value,
                }
            })
            .collect(),
        q: text.clone().unwrap_or_default(),
        search_capped: capped,
        tickets: rows,
        prev_page: (page > 0).then(|| link(page - 1)),
        next_page: has_older.then(|| link(page + 1)),
    }))
}

pub(super) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
