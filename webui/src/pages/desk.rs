//! The staff desk: the ticket list (newest activity first, filters, search, paging) and a
//! ticket page with its conversation and the answer form (reply, note, status).

use super::{blocking, refuse, render, Chrome};
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use postdesk_store::{
    Change, Event, Status, Ticket, TicketAction, TicketFilter, TicketType, Visibility,
};
use serde::Deserialize;

const PAGE_SIZE: usize = 50;
const STATUSES: [&str; 4] = ["open", "waiting", "resolved", "closed"];
const TYPES: [&str; 3] = ["question", "incident", "bug"];

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
struct Choice {
    value: String,
    selected: bool,
}

fn choices<'a>(values: impl IntoIterator<Item = &'a str>, current: &Option<String>) -> Vec<Choice> {
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

struct EventView {
    author: String,
    kind: String,
    visibility: String,
    at: String,
    text: String,
    change: String,
    attachments: Vec<String>,
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    chrome: Chrome,
    number: u64,
    summary: String,
    status: String,
    ticket_type: String,
    priority: String,
    org: String,
    requester: String,
    assignee: String,
    due: String,
    events: Vec<EventView>,
    statuses: [&'static str; 4],
    notice: Option<String>,
    error: Option<String>,
}

fn change_text(c: &Change) -> String {
    match c {
        Change::Status(s) => format!("status → {}", label(s)),
        Change::Assignee(Some(a)) => format!("assigned to {a}"),
        Change::Assignee(None) => "unassigned".into(),
        Change::Priority(p) => format!("priority → {}", label(p)),
        Change::Due(Some(d)) => format!("due {d}"),
        Change::Due(None) => "no due date".into(),
        Change::Contact(c) => format!("contact → {c}"),
    }
}

/// The ticket and its events, if this staff member may see it.
async fn load(
    state: &AppState,
    me: &StaffSession,
    number: u64,
) -> Result<(Ticket, Vec<Event>), Response> {
    let store = state.store.clone();
    let staff = me.staff.clone();
    let found = blocking(move || {
        let Some(t) = store
            .ticket(number)?
            .filter(|t| policy::can_view_ticket(&staff, t))
        else {
            return Ok(None);
        };
        let events = store.events_for(number)?;
        Ok(Some((t, events)))
    })
    .await?;
    // The same answer as a missing ticket, so ticket numbers do not leak.
    found.ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            &format!("Ticket {number} not found."),
        )
    })
}

fn ticket_page(
    me: &StaffSession,
    t: Ticket,
    events: Vec<Event>,
    notice: Option<String>,
    error: Option<String>,
) -> TicketPage {
    TicketPage {
        chrome: Chrome::of(me),
        number: t.number,
        summary: t.summary.clone(),
        status: label(&t.status),
        ticket_type: label(&t.ticket_type),
        priority: label(&t.priority),
        org: t.org.clone(),
        requester: t.requester.clone(),
        assignee: t.assignee.clone().unwrap_or_else(|| "nobody".into()),
        due: t.due.clone().unwrap_or_else(|| "—".into()),
        events: events
            .iter()
            .map(|e| EventView {
                author: e.author.clone(),
                kind: label(&e.kind),
                visibility: label(&e.visibility),
                at: short_time(e.at),
                text: e.text.clone(),
                change: e.change.as_ref().map(change_text).unwrap_or_default(),
                attachments: e
                    .attachments
                    .iter()
                    .map(|a| format!("{} ({} bytes)", a.name, a.size))
                    .collect(),
            })
            .collect(),
        statuses: STATUSES,
        notice,
        error,
    }
}

pub async fn show(
    State(state): State<AppState>,
    me: StaffSession,
    Path(number): Path<u64>,
) -> Response {
    match load(&state, &me, number).await {
        Ok((t, events)) => render(&ticket_page(&me, t, events, None, None)),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct Answer {
    /// Missing counts as wrong: the form is refused, not rejected as malformed.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    visibility: String,
    #[serde(default)]
    status: String,
}

pub async fn answer(
    State(state): State<AppState>,
    me: StaffSession,
    Path(number): Path<u64>,
    Form(a): Form<Answer>,
) -> Response {
    if !me.csrf_ok(&a.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "The form was stale or forged; nothing was done.",
        );
    }
    let (ticket, events) = match load(&state, &me, number).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let bad = |message: &str| {
        let mut r = render(&ticket_page(
            &me,
            ticket.clone(),
            events.clone(),
            None,
            Some(message.to_string()),
        ));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    };
    let visibility = match a.visibility.as_str() {
        "internal" => Visibility::Internal,
        "public" | "" => Visibility::Public,
        _ => return bad("Choose a reply or an internal note."),
    };
    let mut changes = Vec::new();
    if !a.status.is_empty() {
        match a.status.parse::<Status>() {
            Ok(s) if s != ticket.status => changes.push(Change::Status(s)),
            Ok(_) => {}
            Err(e) => return bad(&e),
        }
    }
    let text = a.text.trim().to_string();
    if text.len() > 100_000 {
        return bad("The text is longer than 100,000 characters.");
    }
    if text.is_empty() && changes.is_empty() {
        return bad("Write something or change the status.");
    }
    let action = TicketAction {
        ticket: number,
        author: me.staff.email.clone(),
        by_staff: true,
        text: (!text.is_empty()).then_some((visibility, text)),
        changes,
        at: state.clock.now(),
    };
    let store = state.store.clone();
    if let Err(r) = blocking(move || store.act_on_ticket(&action)).await {
        return r;
    }
    // Post/redirect/get: reloading the page does not send the answer twice.
    Redirect::to(&format!("/desk/tickets/{number}")).into_response()
}
