//! A ticket in the staff desk: its conversation (with the original message and the
//! attachments to download), the answer form (reply, note, status), its fields, follow,
//! and time spent with its cost from the workers' hourly rates.

use super::desk::{label, short_time, STATUSES, TYPES};
use super::{blocking, choices, refuse, render, Choice, Chrome};
use crate::forms::{email_address, forged};
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use postdesk_store::{
    Change, Event, HeldOutcome, Org, Staff, Status, Ticket, TicketAction, Visibility,
};
use serde::Deserialize;
use std::collections::BTreeMap;

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

struct AttachmentView {
    name: String,
    size: u64,
    href: String,
}

struct EventView {
    seq: u64,
    author: String,
    kind: String,
    visibility: String,
    at: String,
    text: String,
    change: String,
    original: bool,
    attachments: Vec<AttachmentView>,
    /// Mail from a non-participant, held for staff to decide.
    held: bool,
    /// What staff decided about it, if they did.
    held_decision: Option<String>,
    suspected_spoofing: bool,
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
    category: String,
    time_spent: String,
    cost: String,
    following: bool,
    events: Vec<EventView>,
    statuses: Vec<Choice>,
    types: Vec<Choice>,
    priorities: Vec<Choice>,
    assignees: Vec<Choice>,
    categories: Vec<Choice>,
    due_value: String,
    contact_value: String,
    people: Vec<String>,
    cc: String,
    notice: Option<String>,
    error: Option<String>,
}

/// A ticket with what its page needs.
struct Context {
    ticket: Ticket,
    events: Vec<Event>,
    staff: Vec<Staff>,
    org: Option<Org>,
    /// Decisions about the ticket's held mail, by event.
    held: BTreeMap<u64, HeldOutcome>,
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
        Change::Type(t) => format!("type → {}", label(t)),
        Change::Category(Some(c)) => format!("category → {c}"),
        Change::Category(None) => "no category".into(),
        Change::Cc(list) if list.is_empty() => "CC list cleared".into(),
        Change::Cc(list) => format!("CC → {}", list.join(", ")),
        Change::TimeSpent(m) => format!("worked {}", hours(u64::from(*m))),
    }
}

fn hours(minutes: u64) -> String {
    format!("{}:{:02} h", minutes / 60, minutes % 60)
}

/// The ticket and what its page needs, if this staff member may see it.
/// [`load`] for a form that changes the ticket: a forged form is refused first.
async fn load_to_change(
    state: &AppState,
    me: &StaffSession,
    number: u64,
    csrf: &str,
) -> Result<Context, Response> {
    if !me.csrf_ok(csrf) {
        return Err(forged());
    }
    load(state, me, number).await
}

async fn load(state: &AppState, me: &StaffSession, number: u64) -> Result<Context, Response> {
    let store = state.store.clone();
    let staff = me.staff.clone();
    let found = blocking(move || {
        let Some(ticket) = store
            .ticket(number)?
            .filter(|t| policy::can_view_ticket(&staff, t))
        else {
            return Ok(None);
        };
        let events = store.events_for(number)?;
        let org = store.org(&ticket.org)?;
        let mut held = BTreeMap::new();
        for e in events.iter().filter(|e| e.held) {
            if let Some(outcome) = store.held_outcome(e.seq)? {
                held.insert(e.seq, outcome);
            }
        }
        Ok(Some(Context {
            ticket,
            events,
            staff: store.staff_list()?,
            org,
            held,
        }))
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

/// Minutes logged and their cost in cents, from each worker's hourly rate.
fn time_and_cost(events: &[Event], staff: &[Staff]) -> (u64, u64) {
    let mut by_author: BTreeMap<&str, u64> = BTreeMap::new();
    for e in events {
        if let Some(Change::TimeSpent(m)) = &e.change {
            *by_author.entry(e.author.as_str()).or_default() += u64::from(*m);
        }
    }
    let rate = |who: &str| {
        staff
            .iter()
            .find(|s| s.email == who)
            .map_or(0, |s| s.hourly_rate_cents)
    };
    let minutes = by_author.values().sum();
    let cost = by_author.iter().map(|(who, m)| m * rate(who) / 60).sum();
    (minutes, cost)
}

fn page(
    me: &StaffSession,
    c: &Context,
    notice: Option<String>,
    error: Option<String>,
) -> TicketPage {
    let t = &c.ticket;
    let (minutes, cost) = time_and_cost(&c.events, &c.staff);
    let categories = c
        .org
        .as_ref()
        .map(|o| o.portal.categories.clone())
        .unwrap_or_default();
    let mut people: Vec<String> = t.participants.iter().chain(&t.cc).cloned().collect();
    people.push(t.requester.clone());
    people.sort();
    people.dedup();
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
        category: t.category.clone().unwrap_or_else(|| "—".into()),
        time_spent: hours(minutes),
        cost: format!("{}.{:02}", cost / 100, cost % 100),
        following: t.followers.contains(&me.staff.email),
        events: c
            .events
            .iter()
            .map(|e| EventView {
                seq: e.seq,
                author: e.author.clone(),
                kind: label(&e.kind),
                visibility: label(&e.visibility),
                at: short_time(e.at),
                text: e.text.clone(),
                change: e.change.as_ref().map(change_text).unwrap_or_default(),
                original: e.inbound.is_some(),
                held: e.held,
                held_decision: c.held.get(&e.seq).map(|o| match o {
                    HeldOutcome::Accepted { by, at } => {
                        format!("{by} accepted the sender as a CC ({}).", short_time(*at))
                    }
                    HeldOutcome::OpenedAsTicket { ticket, by, at } => {
                        format!("{by} opened it as ticket #{ticket} ({}).", short_time(*at))
                    }
                }),
                suspected_spoofing: e.suspected_spoofing,
                attachments: e
                    .attachments
                    .iter()
                    .map(|a| AttachmentView {
                        name: a.name.clone(),
                        size: a.size,
                        href: format!("/desk/tickets/{}/attachments/{}", t.number, a.sha256),
                    })
                    .collect(),
            })
            .collect(),
        statuses: choices(STATUSES, &Some(label(&t.status))),
        types: choices(TYPES, &Some(label(&t.ticket_type))),
        priorities: choices(PRIORITIES, &Some(label(&t.priority))),
        assignees: choices(c.staff.iter().map(|s| s.email.as_str()), &t.assignee),
        categories: choices(categories.iter().map(String::as_str), &t.category),
        due_value: t.due.clone().unwrap_or_default(),
        contact_value: t.requester.clone(),
        people,
        cc: t.cc.join("\n"),
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
        Ok(c) => render(&page(&me, &c, None, None)),
        Err(r) => r,
    }
}

/// The ticket page again with an error, status 400.
fn bad(me: &StaffSession, c: &Context, message: &str) -> Response {
    let mut r = render(&page(me, c, None, Some(message.to_string())));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

/// Applies the action, then shows the ticket (post/redirect/get: a reload sends nothing twice).
async fn apply(state: &AppState, number: u64, action: TicketAction) -> Response {
    let store = state.store.clone();
    match blocking(move || store.act_on_ticket(&action)).await {
        Ok(_) => Redirect::to(&format!("/desk/tickets/{number}")).into_response(),
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
    let c = match load_to_change(&state, &me, number, &a.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let visibility = match a.visibility.as_str() {
        "internal" => Visibility::Internal,
        "public" | "" => Visibility::Public,
        _ => return bad(&me, &c, "Choose a reply or an internal note."),
    };
    let mut changes = Vec::new();
    if !a.status.is_empty() {
        match a.status.parse::<Status>() {
            Ok(s) if s != c.ticket.status => changes.push(Change::Status(s)),
            Ok(_) => {}
            Err(e) => return bad(&me, &c, &e),
        }
    }
    let text = a.text.trim().to_string();
    if text.len() > 100_000 {
        return bad(&me, &c, "The text is longer than 100,000 characters.");
    }
    if text.is_empty() && changes.is_empty() {
        return bad(&me, &c, "Write something or change the status.");
    }
    let action = TicketAction {
        ticket: number,
        author: me.staff.email.clone(),
        by_staff: true,
        text: (!text.is_empty()).then_some((visibility, text)),
        changes,
        at: state.clock.now(),
    };
    apply(&state, number, action).await
}

#[derive(Deserialize)]
pub struct Fields {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    status: String,
    #[serde(default, rename = "type")]
    ticket_type: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    assignee: String,
    #[serde(default)]
    due: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    contact: String,
    #[serde(default)]
    cc: String,
}

/// The changes the fields form asks for, against the ticket as it is.
fn field_changes(c: &Context, f: &Fields) -> Result<Vec<Change>, String> {
    let t = &c.ticket;
    let mut changes = Vec::new();
    let status = f.status.parse::<Status>()?;
    if status != t.status {
        changes.push(Change::Status(status));
    }
    let ticket_type = f.ticket_type.parse()?;
    if ticket_type != t.ticket_type {
        changes.push(Change::Type(ticket_type));
    }
    let priority = f.priority.parse()?;
    if priority != t.priority {
        changes.push(Change::Priority(priority));
    }
    let assignee = match f.assignee.trim() {
        "" => None,
        a => Some(
            c.staff
                .iter()
                .find(|s| s.email == a)
                .map(|s| s.email.clone())
                .ok_or_else(|| format!("{a} is not a staff member."))?,
        ),
    };
    if assignee != t.assignee {
        changes.push(Change::Assignee(assignee));
    }
    let due = match f.due.trim() {
        "" => None,
        d if postdesk_threading::valid_date(d) => Some(d.to_string()),
        d => return Err(format!("{d:?} is not a date written YYYY-MM-DD.")),
    };
    if due != t.due {
        changes.push(Change::Due(due));
    }
    let categories = c
        .org
        .as_ref()
        .map(|o| o.portal.categories.as_slice())
        .unwrap_or_default();
    let category = match f.category.trim() {
        "" => None,
        k if categories.iter().any(|x| x == k) => Some(k.to_string()),
        k => {
            return Err(format!(
                "{k:?} is not one of the organization's categories."
            ))
        }
    };
    if category != t.category {
        changes.push(Change::Category(category));
    }
    let contact = f.contact.trim();
    if contact != t.requester {
        changes.push(Change::Contact(email_address(contact).ok_or_else(
            || format!("The contact {contact:?} is not an email address."),
        )?));
    }
    let mut cc = Vec::new();
    for line in
        f.cc.lines()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|l| !l.is_empty())
    {
        let a = email_address(line)
            .ok_or_else(|| format!("{line:?} in the CC list is not an email address."))?;
        if !cc.contains(&a) {
            cc.push(a);
        }
    }
    if cc != t.cc {
        changes.push(Change::Cc(cc));
    }
    Ok(changes)
}

pub async fn fields(
    State(state): State<AppState>,
    me: StaffSession,
    Path(number): Path<u64>,
    Form(f): Form<Fields>,
) -> Response {
    let c = match load_to_change(&state, &me, number, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let changes = match field_changes(&c, &f) {
        Ok(ch) if ch.is_empty() => {
            return render(&page(&me, &c, Some("Nothing changed.".into()), None))
        }
        Ok(ch) => ch,
        Err(e) => return bad(&me, &c, &e),
    };
    let action = TicketAction {
        ticket: number,
        author: me.staff.email.clone(),
        by_staff: true,
        text: None,
        changes,
        at: state.clock.now(),
    };
    apply(&state, number, action).await
}

#[derive(Deserialize)]
pub struct Time {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    minutes: String,
}

pub async fn log_time(
    State(state): State<AppState>,
    me: StaffSession,
    Path(number): Path<u64>,
    Form(f): Form<Time>,
) -> Response {
    let c = match load_to_change(&state, &me, number, &f.csrf).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(minutes) = f
        .minutes
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=1440).contains(m))
    else {
        return bad(&me, &c, "Give the minutes worked, 1 to 1440.");
    };
    let action = TicketAction {
        ticket: number,
        author: me.staff.email.clone(),
        by_staff: true,
        text: None,
        changes: vec![Change::TimeSpent(minutes)],
        at: state.clock.now(),
    };
    apply(&state, number, action).await
}

#[derive(Deserialize)]
pub struct Follow {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    follow: String,
}

pub async fn follow(
    State(state): State<AppState>,
    me: StaffSession,
    Path(number): Path<u64>,
    Form(f): Form<Follow>,
) -> Response {
    if !me.csrf_ok(&f.csrf) {
        return forged();
    }
    // Only the ticket is needed to check the right to follow it, not the whole page.
    let store = state.store.clone();
    let (staff, on) = (me.staff.clone(), f.follow == "yes");
    let followed = blocking(move || {
        let visible = store
            .ticket(number)?
            .is_some_and(|t| policy::can_view_ticket(&staff, &t));
        if visible {
            store.set_following(number, &staff.email, on)?;
        }
        Ok(visible)
    })
    .await;
    match followed {
        Ok(true) => Redirect::to(&format!("/desk/tickets/{number}")).into_response(),
        Ok(false) => refuse(
            StatusCode::NOT_FOUND,
            &format!("Ticket {number} not found."),
        ),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /desk/tickets/N/held/SEQ/{accept,ticket}`: staff decide about held mail.
pub async fn held(
    State(state): State<AppState>,
    me: StaffSession,
    Path((number, seq, decision)): Path<(u64, u64, String)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !me.csrf_ok(&f.csrf) {
        return forged();
    }
    let open = match decision.as_str() {
        "accept" => false,
        "ticket" => true,
        _ => return refuse(StatusCode::NOT_FOUND, "No such decision."),
    };
    let store = state.store.clone();
    let staff = me.staff.clone();
    let now = state.clock.now();
    let decided = blocking(move || {
        Ok(crate::actions::resolve_held(
            &store, &staff, number, seq, open, now,
        ))
    })
    .await;
    match decided {
        Ok(Ok(HeldOutcome::OpenedAsTicket { ticket, .. })) => {
            Redirect::to(&format!("/desk/tickets/{ticket}")).into_response()
        }
        Ok(Ok(HeldOutcome::Accepted { .. })) => {
            Redirect::to(&format!("/desk/tickets/{number}")).into_response()
        }
        Ok(Err(e)) => e.into_page(),
        Err(r) => r,
    }
}

/// A download that the browser must not render: the bytes as they came.
fn download(bytes: Vec<u8>, content_type: &'static str, filename: &str) -> Response {
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

/// `/desk/tickets/N/original/SEQ`: the message an event came from, byte for byte.
pub async fn original(
    State(state): State<AppState>,
    me: StaffSession,
    Path((number, seq)): Path<(u64, u64)>,
) -> Response {
    let c = match load(&state, &me, number).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(inbound) = c
        .events
        .iter()
        .find(|e| e.seq == seq)
        .and_then(|e| e.inbound)
    else {
        return refuse(StatusCode::NOT_FOUND, "This event has no original message.");
    };
    let store = state.store.clone();
    match blocking(move || store.raw_message(inbound)).await {
        Ok(Some(raw)) => {
            let mut r = download(
                raw,
                "text/plain; charset=utf-8",
                &format!("ticket-{number}-{seq}.eml"),
            );
            // Shown in the browser as plain text; CSP and nosniff keep it inert.
            r.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("inline"),
            );
            r
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, "The original message is gone."),
        Err(r) => r,
    }
}

/// `/desk/tickets/N/attachments/SHA256`: an attachment of this ticket, as a download.
pub async fn attachment(
    State(state): State<AppState>,
    me: StaffSession,
    Path((number, sha256)): Path<(u64, String)>,
) -> Response {
    let c = match load(&state, &me, number).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // Only what this ticket carries: a hash alone opens nothing.
    let Some(name) = c
        .events
        .iter()
        .flat_map(|e| &e.attachments)
        .find(|a| a.sha256 == sha256)
        .map(|a| a.name.clone())
    else {
        return refuse(StatusCode::NOT_FOUND, "No such attachment on this ticket.");
    };
    let store = state.store.clone();
    match blocking(move || store.blob(&sha256)).await {
        Ok(Some(bytes)) => download(bytes, "application/octet-stream", &name),
        Ok(None) => refuse(StatusCode::NOT_FOUND, "The attachment's contents are gone."),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_use_each_workers_rate() {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let worked = |who: &str, m| Event {
            seq: 1,
            ticket: 1,
            kind: postdesk_store::EventKind::Update,
            author: who.into(),
            by_staff: true,
            visibility: Visibility::Internal,
            text: String::new(),
            message_id: None,
            attachments: vec![],
            inbound: None,
            automatic: false,
            change: Some(Change::TimeSpent(m)),
            held: false,
            suspected_spoofing: false,
            at,
        };
        let staff = |email: &str, rate| Staff {
            email: email.into(),
            name: email.into(),
            role: postdesk_store::Role::Tech,
            alerts: true,
            hourly_rate_cents: rate,
            created_at: at,
        };
        let events = [worked("a@x", 90), worked("b@x", 30), worked("a@x", 30)];
        let (minutes, cost) = time_and_cost(&events, &[staff("a@x", 6000), staff("b@x", 3000)]);
        assert_eq!((minutes, cost), (150, 120 * 100 + 15 * 100));
        assert_eq!(hours(150), "2:30 h");
    }
}
