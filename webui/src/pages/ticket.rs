//! A ticket in the staff desk: its conversation (with the original message and the
//! attachments to download), the answer form (reply, note, status), its fields, follow,
//! time spent with its cost from the workers' hourly rates, and deletion (as spam too).

use super::desk::{label, short_time, STATUSES, TYPES};
use super::{choices, render, Choice, Chrome};
use crate::forms::{csrf_form, CsrfOnly, StaffForm, StaffUpload};
use crate::refusals::{PageResult, Refusal};
use crate::session::StaffSession;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use postdesk_desk::audit::Done;
use postdesk_desk::costs::{money, time_and_cost};
use postdesk_desk::fields::FieldEdit;
use postdesk_desk::model::{Change, Event, HeldOutcome, Visibility};
use postdesk_desk::tickets::{TicketView, Write};
use postdesk_desk::DeskError;
use serde::Deserialize;

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
    /// Whether the delete (and spam) form shows.
    can_delete: bool,
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
type Context = TicketView;

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
async fn load(state: &AppState, me: &StaffSession, number: u64) -> Result<Context, Refusal> {
    Ok(state.desk.ticket_view(me.staff.clone(), number).await?)
}

fn page(
    me: &StaffSession,
    c: &Context,
    notice: Option<String>,
    error: Option<String>,
) -> TicketPage {
    let t = &c.ticket;
    let (minutes, cost) = time_and_cost(&c.ticket, &c.staff);
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
        cost: money(cost),
        following: t.followers.contains(&me.staff.email),
        can_delete: postdesk_desk::policy::can_delete_tickets(&me.staff),
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
) -> PageResult {
    let c = load(&state, &me, number).await?;
    Ok(render(&page(&me, &c, None, None)))
}

/// The ticket page again with an error, status 400.
fn bad(me: &StaffSession, c: &Context, message: &str) -> Response {
    let mut r = render(&page(me, c, None, Some(message.to_string())));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

/// Shows the ticket again after a write, or with what was wrong with it (post/redirect/get:
/// a reload sends nothing twice).
async fn after_write(
    state: &AppState,
    me: &StaffSession,
    number: u64,
    written: Result<Vec<Event>, DeskError>,
) -> PageResult {
    match written {
        Ok(events) if events.is_empty() => {
            let c = load(state, me, number).await?;
            Ok(render(&page(me, &c, Some("Nothing changed.".into()), None)))
        }
        Ok(_) => Ok(Redirect::to(&format!("/desk/tickets/{number}")).into_response()),
        Err(DeskError::Invalid(why)) => {
            let c = load(state, me, number).await?;
            Ok(bad(me, &c, &super::sentence(&why)))
        }
        Err(e) => Err(e.into()),
    }
}

csrf_form!(Fields, Time, Follow, Delete);

/// `POST /desk/tickets/N` (a form with files): a reply or an internal note, and a status.
pub async fn answer(
    State(state): State<AppState>,
    Path(number): Path<u64>,
    StaffUpload { me, upload }: StaffUpload,
) -> PageResult {
    let upload = match upload {
        Ok(u) => u,
        Err(why) => {
            let c = load(&state, &me, number).await?;
            return Ok(bad(&me, &c, &why));
        }
    };
    let (text, status) = (upload.field("text"), upload.field("status"));
    let visibility = match upload.field("visibility").as_str() {
        "internal" => Visibility::Internal,
        "public" | "" => Visibility::Public,
        _ => return Err(DeskError::Invalid("choose a reply or an internal note".into()).into()),
    };
    if text.trim().is_empty() && status.is_empty() {
        let c = load(&state, &me, number).await?;
        return Ok(bad(&me, &c, "Write something or change the status."));
    }
    let write = Write {
        text,
        visibility: Some(visibility),
        files: upload.files,
        fields: FieldEdit {
            status: (!status.is_empty()).then_some(status),
            ..FieldEdit::default()
        },
    };
    let written = state.desk.write(me.staff.clone(), number, write).await;
    after_write(&state, &me, number, written).await
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

pub async fn fields(
    State(state): State<AppState>,
    Path(number): Path<u64>,
    StaffForm { me, form: f }: StaffForm<Fields>,
) -> PageResult {
    // The form sends every field; an empty one clears it.
    let write = Write {
        fields: FieldEdit {
            status: Some(f.status),
            ticket_type: Some(f.ticket_type),
            priority: Some(f.priority),
            assignee: Some(Some(f.assignee)),
            due: Some(Some(f.due)),
            category: Some(Some(f.category)),
            contact: Some(f.contact),
            cc: Some(f.cc),
        },
        ..Write::default()
    };
    let written = state.desk.write(me.staff.clone(), number, write).await;
    after_write(&state, &me, number, written).await
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
    Path(number): Path<u64>,
    StaffForm { me, form: f }: StaffForm<Time>,
) -> PageResult {
    let minutes = f.minutes.trim().parse::<u32>().unwrap_or(0);
    let logged = state.desk.log_time(me.staff.clone(), number, minutes).await;
    after_write(&state, &me, number, logged).await
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
    Path(number): Path<u64>,
    StaffForm { me, form: f }: StaffForm<Follow>,
) -> PageResult {
    state
        .desk
        .follow(me.staff.clone(), number, f.follow == "yes")
        .await?;
    Ok(Redirect::to(&format!("/desk/tickets/{number}")).into_response())
}

#[derive(Deserialize)]
pub struct Delete {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    spam: String,
}

/// `POST /desk/tickets/N/delete`: the ticket goes (as spam: its requester is blocked too),
/// and the desk list opens.
pub async fn delete(
    State(state): State<AppState>,
    Path(number): Path<u64>,
    StaffForm { me, form: f }: StaffForm<Delete>,
) -> PageResult {
    let deleted = state
        .desk
        .delete_ticket(me.staff.clone(), number, f.spam == "yes")
        .await?;
    me.record(&state, Done::deleted(&deleted)).await;
    Ok(Redirect::to("/desk").into_response())
}

/// `POST /desk/tickets/N/held/SEQ/{accept,ticket}`: staff decide about held mail.
pub async fn held(
    State(state): State<AppState>,
    Path((number, seq, decision)): Path<(u64, u64, String)>,
    StaffForm { me, .. }: StaffForm<CsrfOnly>,
) -> PageResult {
    let open = match decision.as_str() {
        "accept" => false,
        "ticket" => true,
        _ => return Err(DeskError::NotFound("no such decision".into()).into()),
    };
    let shown = match state.desk.decide_held(me.staff, number, seq, open).await? {
        HeldOutcome::OpenedAsTicket { ticket, .. } => ticket,
        HeldOutcome::Accepted { .. } => number,
    };
    Ok(Redirect::to(&format!("/desk/tickets/{shown}")).into_response())
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
) -> PageResult {
    let raw = state.desk.original(me.staff, number, seq).await?;
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
    Ok(r)
}

/// `/desk/tickets/N/attachments/SHA256`: an attachment of this ticket, as a download.
pub async fn attachment(
    State(state): State<AppState>,
    me: StaffSession,
    Path((number, sha256)): Path<(u64, String)>,
) -> PageResult {
    let file = state.desk.attachment(me.staff, number, sha256).await?;
    Ok(download(file.bytes, "application/octet-stream", &file.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_read_as_hours_and_minutes() {
        assert_eq!(hours(150), "2:30 h");
    }
}
