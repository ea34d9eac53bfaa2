//! JSON API writes for integrations: a new ticket, a public reply or internal note (with
//! files), field changes, the decision about mail held from a non-participant, deleting a
//! ticket (as spam too), unblocking a sender and setting an organization's monitors; each is a desk command (the notifier
//! mails what it should).

use crate::auth::{AuditedCaller, Caller};
use crate::{ApiError, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use postdesk_desk::audit::{AuditAction::SettingsChanged, Done};
use postdesk_desk::exports::timestamp;
use postdesk_desk::fields::FieldEdit;
use postdesk_desk::files::NewFile;
use postdesk_desk::model::{HeldOutcome, Monitor, Visibility};
use postdesk_desk::opening::TicketRequest;
use postdesk_desk::people::erasure_done;
use postdesk_desk::tickets::Write;
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest JSON body with files: 25 MiB of files in base64, and the text.
pub const MAX_JSON_BODY: usize = 36 * 1024 * 1024;

/// A file in a JSON body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBody {
    name: String,
    content_type: String,
    data_base64: String,
}

/// Decodes the files of a JSON body (base64, line breaks allowed).
fn files(list: Vec<FileBody>) -> Result<Vec<NewFile>, ApiError> {
    list.into_iter()
        .map(|f| {
            let data: Vec<u8> = f
                .data_base64
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let bytes = data_encoding::BASE64.decode(&data).map_err(|e| {
                ApiError::BadRequest(format!("attachment {:?}: data_base64: {e}", f.name))
            })?;
            Ok(NewFile::new(&f.name, &f.content_type, bytes))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    text: String,
    #[serde(default)]
    attachments: Vec<FileBody>,
}

/// `PATCH /api/v1/tickets/N`: only the fields present change; `null` clears assignee,
/// due date or category.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsBody {
    status: Option<String>,
    #[serde(rename = "type")]
    ticket_type: Option<String>,
    priority: Option<String>,
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    due: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    category: Option<Option<String>>,
    /// The requester's address (e.g. the real person behind a portal guest's ticket).
    contact: Option<String>,
    /// The whole CC list.
    cc: Option<Vec<String>>,
}

/// Tells a field given as `null` (Some(None)) from one left out (None).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The body of a JSON request, or a 400 that says what is wrong with it.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

pub async fn reply(
    state: State<AppState>,
    caller: Caller,
    number: Path<String>,
    body: Result<Json<TextBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    add_text(state, caller, number, body, Visibility::Public).await
}

pub async fn note(
    state: State<AppState>,
    caller: Caller,
    number: Path<String>,
    body: Result<Json<TextBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    add_text(state, caller, number, body, Visibility::Internal).await
}

async fn add_text(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(number): Path<String>,
    body: Result<Json<TextBody>, JsonRejection>,
    visibility: Visibility,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let number = crate::api::ticket_number(&number)?;
    let body = json_body(body)?;
    if body.text.trim().is_empty() {
        return Err(ApiError::BadRequest("text is empty".into()));
    }
    let write = Write {
        text: body.text,
        visibility: Some(visibility),
        files: files(body.attachments)?,
        fields: FieldEdit::default(),
    };
    let events = state.desk.write(staff, number, write).await?;
    Ok((StatusCode::CREATED, Json(events_json(&events))))
}

pub async fn update_fields(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(number): Path<String>,
    body: Result<Json<FieldsBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    let fields = FieldEdit {
        status: body.status,
        ticket_type: body.ticket_type,
        priority: body.priority,
        assignee: body.assignee,
        due: body.due,
        category: body.category,
        contact: body.contact,
        cc: body.cc.map(|list| list.join("\n")),
    };
    if fields.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to change: give status, type, priority, assignee, due, category, contact or cc"
                .into(),
        ));
    }
    let number = crate::api::ticket_number(&number)?;
    let write = Write {
        fields,
        ..Write::default()
    };
    let events = state.desk.write(staff, number, write).await?;
    Ok(Json(events_json(&events)))
}

fn events_json(events: &[postdesk_desk::model::Event]) -> Value {
    json!({ "events": events.iter().map(crate::api::event_json).collect::<Vec<_>>() })
}

/// `POST /api/v1/tickets`: a staff member opens a ticket for someone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTicketBody {
    org: String,
    requester: String,
    summary: String,
    text: String,
    #[serde(rename = "type")]
    ticket_type: Option<String>,
    priority: Option<String>,
    assignee: Option<String>,
    #[serde(default)]
    attachments: Vec<FileBody>,
    /// Mail the text to the requester (default true).
    notify: Option<bool>,
}

pub async fn open_ticket(
    State(state): State<AppState>,
    Caller(staff): Caller,
    body: Result<Json<NewTicketBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_body(body)?;
    let request = TicketRequest {
        org: body.org,
        requester: body.requester,
        summary: body.summary,
        text: body.text,
        ticket_type: body.ticket_type,
        priority: body.priority,
        assignee: body.assignee,
        files: files(body.attachments)?,
        notify: body.notify.unwrap_or(true),
    };
    let (ticket, event) = state.desk.open_ticket(staff, request).await?;
    let mut answer = crate::api::ticket_json(&ticket, 0);
    answer["events"] = json!([crate::api::event_json(&event)]);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /api/v1/tickets/N/held/SEQ/accept`: the sender of held mail SEQ becomes a CC.
pub async fn accept_held(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path((number, seq)): Path<(String, u64)>,
) -> Result<Json<Value>, ApiError> {
    let number = crate::api::ticket_number(&number)?;
    let outcome = state.desk.decide_held(staff, number, seq, false).await?;
    Ok(Json(held_json(&outcome)))
}

/// `POST /api/v1/tickets/N/held/SEQ/ticket`: held mail SEQ opens a ticket of its own.
pub async fn open_held(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path((number, seq)): Path<(String, u64)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let number = crate::api::ticket_number(&number)?;
    let outcome = state.desk.decide_held(staff, number, seq, true).await?;
    Ok((StatusCode::CREATED, Json(held_json(&outcome))))
}

pub(crate) fn held_json(outcome: &HeldOutcome) -> Value {
    match outcome {
        HeldOutcome::Accepted { by, at } => json!({
            "outcome": "accepted", "by": by, "at": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        }),
        HeldOutcome::OpenedAsTicket { ticket, by, at } => json!({
            "outcome": "opened_as_ticket", "number": ticket, "by": by, "at": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// `true`: the ticket is spam, and its requester is blocked for the organization.
    #[serde(default)]
    spam: bool,
}

/// `DELETE /api/v1/tickets/N[?spam=true]` (Owner, Admin, Manager): the ticket and what
/// only it uses are removed; with `spam`, its requester's mail is refused from now on.
pub async fn delete_ticket(
    State(state): State<AppState>,
    caller: AuditedCaller,
    Path(number): Path<String>,
    query: Result<axum::extract::Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let number = crate::api::ticket_number(&number)?;
    let spam = query.map_err(|e| ApiError::BadRequest(e.body_text()))?.spam;
    let deleted = state
        .desk
        .delete_ticket(caller.staff.clone(), number, spam)
        .await?;
    caller.record(&state, Done::deleted(&deleted)).await;
    Ok(Json(json!({
        "deleted": deleted.ticket,
        "org": deleted.org,
        "events": deleted.events,
        "blocked": deleted.blocked,
    })))
}

/// `DELETE /api/v1/orgs/SLUG/blocked/ADDRESS`: the sender's mail is taken again.
pub async fn unblock_sender(
    State(state): State<AppState>,
    caller: AuditedCaller,
    Path((slug, sender)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .desk
        .unblock_sender(caller.staff.clone(), slug.clone(), sender.clone())
        .await?;
    let detail = format!("unblocked {sender}");
    caller
        .record(&state, Done::new(SettingsChanged, Some(&slug), detail))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/orgs/SLUG/deactivate` (the owner): the organization takes no more mail,
/// its portal closes, and its data is deleted three months later unless reactivated.
pub async fn deactivate_org(
    State(state): State<AppState>,
    caller: AuditedCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_deactivated(&state, caller, slug, true).await
}

/// `POST /api/v1/orgs/SLUG/reactivate` (the owner).
pub async fn reactivate_org(
    State(state): State<AppState>,
    caller: AuditedCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_deactivated(&state, caller, slug, false).await
}

async fn set_deactivated(
    state: &AppState,
    caller: AuditedCaller,
    slug: String,
    deactivate: bool,
) -> Result<Json<Value>, ApiError> {
    let org = state
        .desk
        .set_org_deactivated(caller.staff.clone(), slug, deactivate)
        .await?;
    caller.record(state, Done::status_changed(&org)).await;
    Ok(Json(json!({
        "slug": org.slug,
        "deactivated_at": org.deactivated_at.map(timestamp),
        "deleted_on": org.deleted_on().map(timestamp),
    })))
}

/// `POST /api/v1/people/EMAIL/erase` (owners and admins): the address becomes a pseudonym
/// everywhere, its words "[erased]", its originals and files gone. Answers with the
/// pseudonym and the counts.
pub async fn erase_person(
    State(state): State<AppState>,
    caller: AuditedCaller,
    Path(email): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let e = state.desk.erase_person(caller.staff.clone(), email).await?;
    caller.record(&state, erasure_done(&e)).await;
    Ok(Json(json!({
        "pseudonym": e.pseudonym,
        "tickets": e.tickets,
        "entries": e.entries,
        "originals": e.originals,
        "others_originals": e.others_originals,
        "files": e.files,
        "mails": e.mails.len(),
        "left": e.left,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorsBody {
    monitors: Vec<Monitor>,
    /// Absent: unchanged; `null`: off; a number of days.
    #[serde(default, deserialize_with = "present")]
    auto_close_days: Option<Option<u32>>,
}

/// `PUT /api/v1/orgs/SLUG/monitors`: replaces the organization's monitors, and its
/// auto-close days when given (owners and admins); a bad kind, hours or days is a 400
/// and changes nothing. Answers with what is now set.
pub async fn set_monitors(
    State(state): State<AppState>,
    caller: AuditedCaller,
    Path(slug): Path<String>,
    body: Result<Json<MonitorsBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    state
        .desk
        .set_monitors(
            caller.staff.clone(),
            slug.clone(),
            body.monitors,
            body.auto_close_days,
        )
        .await?;
    let saved = Done::new(
        SettingsChanged,
        Some(&slug),
        "monitors and auto-close saved",
    );
    caller.record(&state, saved).await;
    crate::api::monitors(State(state), Caller(caller.staff), Path(slug)).await
}
