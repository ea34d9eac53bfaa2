//! JSON API handlers: tickets, a ticket with its events, raw messages, the decision log,
//! an organization's blocked senders and monitors, the audit log.

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use postdesk_desk::costs::money;
use postdesk_desk::exports::{resolved_at, timestamp};
use postdesk_desk::model::{Event, Status, Ticket, TicketFilter, TicketType};
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// This node's metrics in Prometheus text format, for the clients of `metrics_allow`.
pub async fn metrics(
    State(state): State<AppState>,
    client: crate::client_ip::ClientIp,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    // A request a proxy forwarded, from a proxy not among trusted_proxies: its client is
    // unknown (a proxy on this host would make everyone loopback).
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    if forwarded && !state.trusted_proxies.contains(peer.ip()) {
        return Err(ApiError::Forbidden(
            "metrics through a proxy need it in trusted_proxies".into(),
        ));
    }
    if !state.metrics_allow.contains(client.0) {
        return Err(ApiError::Forbidden(
            "metrics are for the addresses in metrics_allow".into(),
        ));
    }
    let text = state.desk.metrics_text().await?;
    Ok(axum::response::IntoResponse::into_response((
        [(
            axum::http::header::CONTENT_TYPE,
            postdesk_desk::metrics::METRICS_CONTENT_TYPE,
        )],
        text,
    )))
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
    timestamp(t)
}

/// A ticket as the API shows it: its fields, and those of the export's row (resolved,
/// first response, time logged and its cost at today's rates, `cost_cents`).
pub(crate) fn ticket_json(t: &Ticket, cost_cents: u64) -> Value {
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
        "resolved_at": resolved_at(t).map(rfc3339),
        "first_response_at": t.first_response_at.map(rfc3339),
        "time_logged_minutes": t.minutes_logged.values().sum::<u64>(),
        "cost": money(cost_cents),
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
        "monitor": e.monitor,
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
    let tickets = state.desk.tickets(staff, filter, limit).await?;
    let list: Vec<Value> = tickets
        .iter()
        .map(|(t, cost)| ticket_json(t, *cost))
        .collect();
    Ok(Json(json!({ "tickets": list })))
}

pub async fn show_ticket(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let number = ticket_number(&number)?;
    let (ticket, cost, events) = state.desk.ticket_events(staff, number).await?;
    let mut v = ticket_json(&ticket, cost);
    v["events"] = Value::Array(events.iter().map(event_json).collect());
    Ok(Json(v))
}

/// `GET /api/v1/messages/{message_id}/raw`: a stored original by its Message-ID, through
/// the tickets the caller may see (see `Desk::original_by_message_id`).
pub async fn raw_message(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(message_id): Path<String>,
) -> Result<Response, ApiError> {
    let raw = state.desk.original_by_message_id(staff, message_id).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw).into_response())
}

/// `GET /api/v1/tickets/N/events/SEQ/raw`: the original of one entry of a ticket.
pub async fn event_original(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path((number, seq)): Path<(String, u64)>,
) -> Result<Response, ApiError> {
    let number = ticket_number(&number)?;
    let raw = state.desk.original(staff, number, seq).await?;
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
    let decisions = state.desk.decisions(staff, page(q.limit, 100)).await?;
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
    let number = ticket_number(&number)?;
    let recipient = q
        .recipient
        .ok_or_else(|| ApiError::BadRequest("give ?for=EMAIL".into()))?;
    let address = state.desk.reply_address(staff, number, recipient).await?;
    Ok(Json(json!({ "address": address })))
}

/// The outbox: every outbound mail with its state, newest first.
pub async fn outbox(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let items = state.desk.outbox(staff, page(q.limit, 100)).await?;
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
    let list: Vec<Value> = state
        .desk
        .sources(staff)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "source": s.status.source,
                "org": s.status.org,
                "connected": s.status.connected,
                "idle": s.status.idle,
                "uidvalidity": s.cursor.uidvalidity,
                "last_uid": s.cursor.last_uid,
                "imported": s.imported,
                "refused": s.refused,
                "last_success": s.status.last_success.map(rfc3339),
                "last_error": s.status.last_error,
                "last_error_at": s.status.last_error_at.map(rfc3339),
            })
        })
        .collect();
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

/// `GET /api/v1/orgs/SLUG/monitors`: the organization's monitors and auto-close days
/// (owners, admins, managers).
pub async fn monitors(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = state.desk.monitors(staff, slug).await?;
    Ok(Json(
        json!({ "monitors": a.monitors, "auto_close_days": a.auto_close_days }),
    ))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/v1/audit?before=SEQ&limit=N`: the audit log, newest first (the owner only).
pub async fn audit(
    State(state): State<AppState>,
    Caller(staff): Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let entries = state
        .desk
        .audit_log(staff, q.before, page(q.limit, 100))
        .await?;
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "action": e.action,
                "actor": e.actor,
                "from": e.from,
                "org": e.org,
                "detail": e.detail,
                "at": rfc3339(e.at),
            })
        })
        .collect();
    Ok(Json(json!({ "audit": list })))
}
