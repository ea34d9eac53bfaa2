//! The staff desk's ticket list: newest activity first, filters, search, paging.

use super::{blocking, render, Chrome};
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use postdesk_store::{Status, Ticket, TicketFilter, TicketType};
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
    statuses: Vec<Choice>,
    types: Vec<Choice>,
    orgs: Vec<Choice>,
    q: String,
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

/// One option of a filter's select.
pub(super) struct Choice {
    pub value: String,
    pub selected: bool,
}

pub(super) fn choices<'a>(
    values: impl IntoIterator<Item = &'a str>,
    current: &Option<String>,
) -> Vec<Choice> {
    values
        .into_iter()
        .map(|v| Choice {
            value: v.to_string(),
            selected: current.as_deref() == Some(v),
        })
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    me: StaffSession,
    Query(q): Query<DeskQuery>,
) -> Response {
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (status, ticket_type, org, text) = (
        nonempty(&q.status),
        nonempty(&q.ticket_type),
        nonempty(&q.org),
        nonempty(&q.q),
    );
    let filter = TicketFilter {
        org: org.clone(),
        status: status.as_deref().and_then(|s| s.parse::<Status>().ok()),
        ticket_type: ticket_type.as_deref().and_then(|t| match t {
            "question" => Some(TicketType::Question),
            "incident" => Some(TicketType::Incident),
            "bug" => Some(TicketType::Bug),
            _ => None,
        }),
    };
    let page = q.page.unwrap_or(0).min(10_000);
    let store = state.store.clone();
    let staff = me.staff.clone();
    let needle = text.as_deref().map(str::to_lowercase);
    let (tickets, orgs) = match blocking(move || {
        let matches = |t: &Ticket| {
            policy::can_view_ticket(&staff, t)
                && needle
                    .as_deref()
                    .is_none_or(|n| t.summary.to_lowercase().contains(n) || t.requester.contains(n))
        };
        // One more than a page tells whether an older page exists.
        let tickets = store.tickets_where(&filter, (page + 1) * PAGE_SIZE + 1, matches)?;
        let orgs = store
            .orgs()?
            .into_iter()
            .map(|o| o.slug)
            .collect::<Vec<_>>();
        Ok((tickets, orgs))
    })
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let has_older = tickets.len() > (page + 1) * PAGE_SIZE;
    let rows = tickets
        .into_iter()
        .skip(page * PAGE_SIZE)
        .take(PAGE_SIZE)
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
            ("q", &text),
        ] {
            if let Some(v) = v {
                pairs.push(format!("{k}={}", url_encode(v)));
            }
        }
        pairs.push(format!("page={p}"));
        format!("/desk?{}", pairs.join("&"))
    };
    render(&DeskPage {
        chrome: Chrome::of(&me),
        statuses: choices(STATUSES, &status),
        types: choices(TYPES, &ticket_type),
        orgs: choices(orgs.iter().map(String::as_str), &org),
        q: text.clone().unwrap_or_default(),
        tickets: rows,
        prev_page: (page > 0).then(|| link(page - 1)),
        next_page: has_older.then(|| link(page + 1)),
    })
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
