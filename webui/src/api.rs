//! JSON API handlers: tickets, a ticket with its events, raw messages, the decision log,
//! an organization's blocked senders.

use crate::auth::Caller;
use crate::{policy, ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use postdesk_store::{normalize_message_id, Event, Status, Ticket, TicketFilter, TicketType};
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// An unknown address: JSON under `/api/`, a page for browsers everywhere else.
pub async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    let missing = ApiError::NotFound("no such route".into());
    if uri.path().starts_with("/api/") {
        axum::response::IntoResponse::into_response(missing)
    } else {
        crate::refusals::refuse(axum::http::StatusCode::NOT_FOUND, "There is no such page.")
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub(crate) fn ticket_json(t: &Ticket) -> Value {
    json!({
        "number": t.number,
        "org": t.org,
        "type": t.ticket_type,
        "status": t.status,
        "summary": t.summary,
        "requester": t.requester,
        "assignee": t.assignee,
        "cc": t.cc,
        "automatic": t.automatic,
        "priority": t.priority,
        "due": t.due,
        "category": t.category,
        "followers": t.followers,
        "created_by": t.created_by,
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
    })
}

pub(crate) fn event_json(e: &Event) -> Value {
    json!({
        "seq": e.seq,
        "kind": e.kind,
        "author": e.author,
        "by_staff": e.by_staff,
        "visibility": e.visibility,
        "text": e.text,
        "message_id": e.message_id.as_ref().map(|m| format!("<{m}>")),
        "automatic": e.automatic,
        "change": e.change,
        "attachments": e.attachments.iter().map(|a| json!({
            "name": a.name, "content_type": a.content_type, "size": a.size, "sha256": a.sha256,
        })).collect::<Vec<_>>(),
        "held": e.held,
        "suspected_spoofing": e.suspected_spoofing,
        "quiet": e.quiet,
        "at": rfc3339(e.at),
    })
}

pub(crate) fn ticket_number(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{raw:?} is not a ticket number")))
}

/// The page size a list request asks for: `default` when absent, at most 10,000.
fn page(limit: Option<usize>, default: usize) -> usize {
    limit.unwrap_or(default).min(10_000)
}

/// The decision log, the outbox and the mailbox sources show every organization's mail.
fn require_mail_logs(staff: &postdesk_store::Staff, what: &str) -> Result<(), ApiError> {
    if policy::can_view_mail_logs(staff) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{what} is for owners, admins and managers"
        )))
    }
}

/// Runs a store call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::BadRequest(format!("request aborted: {e}")))?
}

#[derive(Deserialize)]
pub struct TicketQuery {
    org: Option<String>,
    status: Option<String>,
    #[serde(rename = "type")]
    ticket_type: Option<String>,
    limit: Option<usize>,
}

pub async fn list_tickets(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Query(q): Query<TicketQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = TicketFilter {
        org: q.org.filter(|o| !o.is_empty()),
        status: q
            .status
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<Status>())
            .transpose()
            .map_err(ApiError::BadRequest)?,
        ticket_type: q
            .ticket_type
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<TicketType>())
            .transpose()
            .map_err(ApiError::BadRequest)?,
    };
    let limit = page(q.limit, 100);
    let store = state.store.clone();
    let tickets = blocking(move || {
        Ok(store.tickets_where(&filter, limit, |t| policy::can_view_ticket(&staff, t))?)
    })
    .await?;
    let list: Vec<Value> = tickets.iter().map(ticket_json).collect();
    Ok(Json(json!({ "tickets": list })))
}

pub async fn show_ticket(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let number = ticket_number(&number)?;
    let store = state.store.clone();
    let (ticket, events) = blocking(move || {
        let t = store
            .ticket(number)?
            .ok_or_else(|| ApiError::NotFound(format!("ticket {number} not found")))?;
        let events = store.events_for(number)?;
        Ok((t, events))
    })
    .await?;
    if !policy::can_view_ticket(&staff, &ticket) {
        // The same answer as a missing ticket, so ticket numbers do not leak.
        return Err(ApiError::NotFound(format!("ticket {number} not found")));
    }
    let mut v = ticket_json(&ticket);
    v["events"] = Value::Array(events.iter().map(event_json).collect());
    Ok(Json(v))
}

/// `GET /api/v1/messages/{message_id}/raw`: a stored original by its Message-ID. Each
/// organization keeps its own Message-IDs, so the message is looked for through the
/// tickets the caller may see, and what comes back is the original of that ticket's own
/// entry with this Message-ID: another organization's mail with the same id stays hidden.
pub async fn raw_message(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(message_id): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let raw = blocking(move || {
        let missing = || ApiError::NotFound(format!("no stored message {message_id}"));
        let wanted = normalize_message_id(&message_id);
        for org in store.orgs()? {
            let Some(ticket) = store
                .ticket_for_message_id(&org.slug, &wanted)?
                .and_then(|n| store.ticket(n).ok().flatten())
                .filter(|t| policy::can_view_ticket(&staff, t))
            else {
                continue;
            };
            let inbound = store
                .events_for(ticket.number)?
                .into_iter()
                .find(|e| e.message_id.as_deref() == Some(wanted.as_str()))
                .and_then(|e| e.inbound);
            if let Some(inbound) = inbound {
                return store.raw_message(inbound)?.ok_or_else(missing);
            }
        }
        // Mail in no ticket (refused, a duplicate) is for those who see the inbound log.
        if policy::can_view_mail_logs(&staff) {
            if let Some(inbound) = store.inbound_for_message_id(&wanted)? {
                return store.raw_message(inbound)?.ok_or_else(missing);
            }
        }
        Err(missing())
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

/// `GET /api/v1/tickets/N/events/SEQ/raw`: the original of one entry of a ticket.
pub async fn event_original(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path((number, seq)): Path<(String, u64)>,
) -> Result<Response, ApiError> {
    let number = ticket_number(&number)?;
    let store = state.store.clone();
    let raw = blocking(move || {
        let missing = || ApiError::NotFound(format!("ticket {number} has no original {seq}"));
        store
            .ticket(number)?
            .filter(|t| policy::can_view_ticket(&staff, t))
            .ok_or_else(|| ApiError::NotFound(format!("ticket {number} not found")))?;
        let inbound = store
            .events_for(number)?
            .into_iter()
            .find(|e| e.seq == seq)
            .and_then(|e| e.inbound)
            .ok_or_else(missing)?;
        store.raw_message(inbound)?.ok_or_else(missing)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

#[derive(Deserialize)]
pub struct PageQuery {
    limit: Option<usize>,
}

pub async fn inbound_log(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    require_mail_logs(&staff, "the inbound log")?;
    let limit = page(q.limit, 100);
    let store = state.store.clone();
    let decisions = blocking(move || Ok(store.decisions(limit)?)).await?;
    let list: Vec<Value> = decisions
        .iter()
        .map(|d| {
            let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
            if let Some(m) = d.message_id.as_ref() {
                v["message_id"] = Value::String(format!("<{m}>"));
            }
            v
        })
        .collect();
    Ok(Json(json!({ "inbound": list })))
}

#[derive(Deserialize)]
pub struct ReplyAddressQuery {
    #[serde(rename = "for")]
    recipient: Option<String>,
}

/// The signed reply address (`org+TOKEN@domain`) through which `for` can write into the
/// ticket; the same address outbound mail to that person carries in Reply-To.
pub async fn reply_address(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(number): Path<String>,
    Query(q): Query<ReplyAddressQuery>,
) -> Result<Json<Value>, ApiError> {
    if !policy::can_issue_reply_address(&staff) {
        return Err(ApiError::Forbidden(
            "reply addresses are issued by owners, admins and managers".into(),
        ));
    }
    let number = ticket_number(&number)?;
    let recipient = q
        .recipient
        .map(|r| r.trim().to_ascii_lowercase())
        .filter(|r| r.contains('@') && !r.contains(char::is_whitespace))
        .ok_or_else(|| ApiError::BadRequest("give ?for=EMAIL".into()))?;
    let store = state.store.clone();
    let address = blocking(move || {
        let ticket = store
            .ticket(number)?
            .ok_or_else(|| ApiError::NotFound(format!("ticket {number} not found")))?;
        let org = store
            .org(&ticket.org)?
            .ok_or_else(|| ApiError::NotFound(format!("organization {} not found", ticket.org)))?;
        let base = org
            .addresses
            .first()
            .cloned()
            .ok_or_else(|| ApiError::NotFound("organization has no address".into()))?;
        // Handing someone a reply address lets them write into the ticket: someone who is
        // neither its requester, a CC nor staff is let in by it (a token alone proves who
        // writes, not that they may).
        if ticket.requester != recipient
            && !ticket.cc.contains(&recipient)
            && store.staff(&recipient)?.is_none()
        {
            store.grant_reply(number, &recipient)?;
        }
        let secret = store.secret("reply-token")?;
        Ok(postdesk_threading::reply_address(
            &secret, number, &base, &recipient,
        ))
    })
    .await?;
    Ok(Json(json!({ "address": address })))
}

/// The outbox: every outbound mail with its state, newest first.
pub async fn outbox(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    require_mail_logs(&staff, "the outbox")?;
    let limit = page(q.limit, 100);
    let store = state.store.clone();
    let items = blocking(move || Ok(store.outbox(limit)?)).await?;
    let list: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "ticket": i.ticket,
                "event": i.event,
                "recipient": i.recipient,
                "kind": i.kind,
                "message_id": format!("<{}>", i.message_id),
                "status": i.status,
                "attempts": i.attempts,
                "last_error": i.last_error,
                "next_attempt_at": i.next_attempt_at.map(rfc3339),
                "created_at": rfc3339(i.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "outbox": list })))
}

/// Mailbox sources read over IMAP: whether each is connected, how far it has read, what
/// went wrong last.
pub async fn sources(
    State(state): State<AppState>,
    Caller(staff): Caller,
) -> Result<Json<Value>, ApiError> {
    require_mail_logs(&staff, "the mailbox sources")?;
    let store = state.store.clone();
    let list = blocking(move || {
        let mut out = Vec::new();
        for s in store.mailbox_statuses()? {
            let cursor = store.mailbox_cursor(&s.source)?;
            let (imported, refused) = store.mailbox_counts(&s.source)?;
            out.push(json!({
                "source": s.source,
                "org": s.org,
                "connected": s.connected,
                "idle": s.idle,
                "uidvalidity": cursor.uidvalidity,
                "last_uid": cursor.last_uid,
                "imported": imported,
                "refused": refused,
                "last_success": s.last_success.map(rfc3339),
                "last_error": s.last_error,
                "last_error_at": s.last_error_at.map(rfc3339),
            }));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(json!({ "sources": list })))
}

/// `GET /api/v1/orgs/SLUG/blocked`: the senders the organization refuses.
pub async fn blocked_senders(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = state.desk.blocked_senders(staff, slug).await?;
    Ok(Json(json!(list
        .iter()
        .map(|b| json!({
            "sender": b.sender,
            "by": b.by,
            "ticket": b.ticket,
            "at": b.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        }))
        .collect::<Vec<_>>())))
}
