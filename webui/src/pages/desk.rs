//! The staff desk's ticket list: newest activity first; filters by status (with counts),
//! type, organization and my relation; text search in summaries and messages; paging.

use super::{blocking, choices, render, Choice, Chrome};
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
    statuses: Vec<StatusChoice>,
    /// Tickets under the filters other than status.
    total: u64,
    types: Vec<Choice>,
    orgs: Vec<Choice>,
    relations: Vec<Choice>,
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
/// A status option with how many tickets have it under the other filters.
struct StatusChoice {
    value: &'static str,
    selected: bool,
    count: u64,
}

/// How a ticket relates to the staff member looking ("my relation" filter).
const RELATIONS: [&str; 4] = ["raised", "assigned", "following", "cc"];
/// A text search reads at most this many of the most recently active tickets' messages.
const SEARCH_CAP: usize = 20_000;

fn related(t: &Ticket, email: &str, relation: Option<&str>) -> bool {
    match relation {
        Some("raised") => t.requester == email,
        Some("assigned") => t.assignee.as_deref() == Some(email),
        Some("following") => t.followers.iter().any(|f| f == email),
        Some("cc") => t.cc.iter().any(|c| c == email),
        _ => true,
    }
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
    // The list opens on what needs work; "any" (an empty status) shows every ticket.
    let status = match &q.status {
        None => Some(Status::Open.as_str().to_string()),
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
    let store = state.store.clone();
    let staff = me.staff.clone();
    let needle = text.as_deref().map(str::to_lowercase);
    let rel = relation.clone();
    let found = blocking(move || {
        let examined = std::cell::Cell::new(0usize);
        let matches = |t: &Ticket| {
            if !policy::can_view_ticket(&staff, t) || !related(t, &staff.email, rel.as_deref()) {
                return false;
            }
            let Some(n) = needle.as_deref() else {
                return true;
            };
            examined.set(examined.get() + 1);
            if examined.get() > SEARCH_CAP {
                return false;
            }
            t.summary.to_lowercase().contains(n)
                || t.requester.contains(n)
                || store
                    .events_for(t.number)
                    .is_ok_and(|events| events.iter().any(|e| e.text.to_lowercase().contains(n)))
        };
        // One more than a page tells whether an older page exists.
        let tickets = store.tickets_where(&filter, (page + 1) * PAGE_SIZE + 1, matches)?;
        let capped = examined.get() > SEARCH_CAP;
        // Counts by status under the other filters (not the text search).
        let mut counts = [0u64; 4];
        let index = |s: Status| Status::ALL.iter().position(|x| *x == s).unwrap_or(0);
        let type_filter = filter.ticket_type;
        if matches!(staff.role, postdesk_store::Role::Tech) || rel.is_some() {
            store.visit_tickets(|t| {
                if policy::can_view_ticket(&staff, t)
                    && related(t, &staff.email, rel.as_deref())
                    && filter.org.as_ref().is_none_or(|o| *o == t.org)
                    && type_filter.is_none_or(|ty| ty == t.ticket_type)
                {
                    counts[index(t.status)] += 1;
                }
            })?;
        } else {
            for (o, ty, st, n) in store.ticket_counts()? {
                if filter.org.as_ref().is_none_or(|f| *f == o)
                    && type_filter.is_none_or(|f| f == ty)
                {
                    counts[index(st)] += n;
                }
            }
        }
        let orgs = store
            .orgs()?
            .into_iter()
            .map(|o| o.slug)
            .collect::<Vec<_>>();
        Ok((tickets, capped, counts, orgs))
    })
    .await;
    let (tickets, capped, counts, orgs) = match found {
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
            ("mine", &relation),
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
        q: text.clone().unwrap_or_default(),
        search_capped: capped,
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
