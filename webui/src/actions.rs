//! JSON API writes for integrations: a public reply, an internal note, field changes, and
//! the decision about mail held from a non-participant, each appended to the event log
//! (the notifier mails what it should) under the same policy as reading.

use crate::auth::Caller;
use crate::{policy, ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use postdesk_store::{
    Change, Event, HeldAction, HeldOutcome, Priority, Staff, Status, StoreError, TicketAction,
    Visibility,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest reply or note accepted, in bytes.
const MAX_TEXT: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    text: String,
}

/// `PATCH /api/v1/tickets/N`: only the fields present change; `null` clears assignee or
/// due date.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldsBody {
    status: Option<String>,
    priority: Option<String>,
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    due: Option<Option<String>>,
    /// The requester's address (e.g. the real person behind a portal guest's ticket).
    contact: Option<String>,
}

/// Tells a field given as `null` (Some(None)) from one left out (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub async fn reply(
    state: State<AppState>,
    caller: Caller,
    number: Path<String>,
    body: Result<Json<TextBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    add_text(state, caller, number, body, Visibility::Public).await
}

pub async fn note(
    state: State<AppState>,
    caller: Caller,
    number: Path<String>,
    body: Result<Json<TextBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    add_text(state, caller, number, body, Visibility::Internal).await
}

async fn add_text(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(number): Path<String>,
    body: Result<Json<TextBody>, axum::extract::rejection::JsonRejection>,
    visibility: Visibility,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let text = body.text.trim().to_string();
    if text.is_empty() {
        return Err(ApiError::BadRequest("text is empty".into()));
    }
    if text.len() > MAX_TEXT {
        return Err(ApiError::BadRequest(format!(
            "text is longer than {MAX_TEXT} bytes"
        )));
    }
    let events = act(&state, staff, &number, Some((visibility, text)), Vec::new()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "events": events }))))
}

pub async fn update_fields(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(number): Path<String>,
    body: Result<Json<FieldsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut changes = Vec::new();
    if let Some(s) = body.status {
        changes.push(Change::Status(
            s.parse::<Status>().map_err(ApiError::BadRequest)?,
        ));
    }
    if let Some(p) = body.priority {
        changes.push(Change::Priority(
            p.parse::<Priority>().map_err(ApiError::BadRequest)?,
        ));
    }
    if let Some(due) = body.due {
        if let Some(d) = &due {
            if !postdesk_threading::valid_date(d) {
                return Err(ApiError::BadRequest(format!(
                    "due {d:?} is not a date written YYYY-MM-DD"
                )));
            }
        }
        changes.push(Change::Due(due));
    }
    if let Some(assignee) = body.assignee {
        let assignee = match assignee {
            Some(email) => {
                let email = email.trim().to_ascii_lowercase();
                let store = state.store.clone();
                let found = crate::api::blocking(move || Ok(store.staff(&email)?)).await?;
                Some(
                    found
                        .ok_or_else(|| {
                            ApiError::BadRequest("assignee is not a staff member".into())
                        })?
                        .email,
                )
            }
            None => None,
        };
        changes.push(Change::Assignee(assignee));
    }
    if let Some(contact) = body.contact {
        let valid = crate::forms::email_address(&contact).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "contact {:?} is not an email address",
                contact.trim()
            ))
        })?;
        changes.push(Change::Contact(valid));
    }
    if changes.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to change: give status, priority, assignee, due or contact".into(),
        ));
    }
    let events = act(&state, staff, &number, None, changes).await?;
    Ok(Json(json!({ "events": events })))
}

/// Checks the caller may act on the ticket, then applies the action.
async fn act(
    state: &AppState,
    staff: Staff,
    number: &str,
    text: Option<(Visibility, String)>,
    changes: Vec<Change>,
) -> Result<Vec<Value>, ApiError> {
    let number = crate::api::ticket_number(number)?;
    let store = state.store.clone();
    let events: Vec<Event> = crate::api::blocking(move || {
        let ticket = store
            .ticket(number)?
            .filter(|t| policy::can_view_ticket(&staff, t))
            // The same answer as a missing ticket, so ticket numbers do not leak.
            .ok_or_else(|| ApiError::NotFound(format!("ticket {number} not found")))?;
        Ok(store.act_on_ticket(&TicketAction {
            ticket: ticket.number,
            author: staff.email.clone(),
            by_staff: true,
            text,
            changes,
            at: time::OffsetDateTime::now_utc(),
        })?)
    })
    .await?;
    Ok(events.iter().map(crate::api::event_json).collect())
}

/// `POST /api/v1/tickets/N/held/SEQ/accept`: the sender of held mail SEQ becomes a CC.
pub async fn accept_held(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path((number, seq)): Path<(String, u64)>,
) -> Result<Json<Value>, ApiError> {
    let outcome = decide_held(&state, staff, &number, seq, false).await?;
    Ok(Json(outcome))
}

/// `POST /api/v1/tickets/N/held/SEQ/ticket`: held mail SEQ opens a ticket of its own.
pub async fn open_held(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path((number, seq)): Path<(String, u64)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let outcome = decide_held(&state, staff, &number, seq, true).await?;
    Ok((StatusCode::CREATED, Json(outcome)))
}

async fn decide_held(
    state: &AppState,
    staff: Staff,
    number: &str,
    seq: u64,
    open: bool,
) -> Result<Value, ApiError> {
    let number = crate::api::ticket_number(number)?;
    let store = state.store.clone();
    let now = state.clock.now();
    crate::api::blocking(move || {
        let outcome = resolve_held(&store, &staff, number, seq, open, now)?;
        Ok(held_json(&outcome))
    })
    .await
}

/// Staff member `staff` decides about held mail `seq` of ticket `number` (the API and the
/// ticket page both come here): a ticket they may not see is "not found", a decision
/// taken already is a conflict.
pub(crate) fn resolve_held(
    store: &postdesk_store::Store,
    staff: &Staff,
    number: u64,
    seq: u64,
    open: bool,
    now: time::OffsetDateTime,
) -> Result<HeldOutcome, ApiError> {
    store
        .ticket(number)?
        .filter(|t| policy::can_view_ticket(staff, t))
        .ok_or_else(|| ApiError::NotFound(format!("ticket {number} not found")))?;
    let action = if open {
        let event = store
            .events_for(number)?
            .into_iter()
            .find(|e| e.seq == seq && e.held)
            .ok_or_else(|| ApiError::NotFound(format!("held mail {seq} on ticket {number}")))?;
        let ticket = store
            .ticket(number)?
            .ok_or_else(|| ApiError::NotFound(format!("ticket {number} not found")))?;
        let subject = match event.inbound {
            Some(inbound) => store
                .decision(inbound, &ticket.org)?
                .map(|d| d.subject)
                .unwrap_or_default(),
            None => String::new(),
        };
        let (summary, ticket_type) = postdesk_desk::held::ticket_from_subject(&subject);
        HeldAction::OpenTicket {
            summary,
            ticket_type,
        }
    } else {
        HeldAction::Accept
    };
    store
        .resolve_held(number, seq, &action, &staff.email, now)
        .map_err(|e| match e {
            StoreError::Invalid(why) => ApiError::Conflict(why),
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            other => ApiError::Internal(other),
        })
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
