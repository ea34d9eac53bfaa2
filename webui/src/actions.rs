//! JSON API writes for integrations: a public reply, an internal note, and field changes,
//! each appended to the event log (the notifier mails what it should) under the same
//! policy as reading.

use crate::auth::Caller;
use crate::{policy, ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use postdesk_store::{Change, Event, Priority, Staff, Status, TicketAction, Visibility};
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
