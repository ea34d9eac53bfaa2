//! A portal user's own ticket: its public conversation, who handles it, and their replies
//! with files.

use crate::pages::{refuse, render};
use crate::refusals::{forged, Refusal};
use crate::session::PortalSession;
use crate::upload::Upload;
use crate::AppState;
use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use postdesk_desk::model::{Event, EventKind, Org, Ticket, Visibility};
use postdesk_desk::opening::RequesterReply;
use postdesk_desk::DeskError;

use super::{member, of_org, org};

struct EventView {
    author: String,
    at: String,
    text: String,
}

#[derive(Template)]
#[template(path = "portal_ticket.html")]
struct PortalTicketPage {
    slug: String,
    org_name: String,
    email: String,
    csrf: String,
    number: u64,
    summary: String,
    status: String,
    handler: String,
    due: String,
    updated: String,
    events: Vec<EventView>,
    /// The organization's privacy notice, shown with the reply form.
    privacy_notice: String,
    error: Option<String>,
}

/// The ticket, if it is this user's in this organization.
async fn own_ticket(
    state: &AppState,
    me: &PortalSession,
    number: u64,
) -> Result<(Ticket, Vec<Event>, String), Response> {
    let own = state
        .desk
        .requester_ticket(me.org.clone(), me.email.clone(), number)
        .await
        .map_err(|e| Refusal::from(e).0)?;
    Ok((own.ticket, own.events, own.handler))
}

fn ticket_page(
    org: &Org,
    me: &PortalSession,
    t: &Ticket,
    events: &[Event],
    handler: String,
    error: Option<String>,
) -> PortalTicketPage {
    PortalTicketPage {
        slug: org.slug.clone(),
        org_name: org.name.clone(),
        email: me.email.clone(),
        csrf: me.csrf.clone(),
        number: t.number,
        summary: t.summary.clone(),
        status: crate::pages::desk::label(&t.status),
        handler,
        due: t.due.clone().unwrap_or_else(|| "—".into()),
        updated: crate::pages::desk::short_time(t.updated_at),
        // End users see the public conversation: no notes, no field changes, no reports.
        events: events
            .iter()
            .filter(|e| e.visibility == Visibility::Public)
            .filter(|e| matches!(e.kind, EventKind::Created | EventKind::Reply))
            .map(|e| EventView {
                author: if e.by_staff {
                    format!("{} (support)", e.author)
                } else {
                    e.author.clone()
                },
                at: crate::pages::desk::short_time(e.at),
                text: e.text.clone(),
            })
            .collect(),
        privacy_notice: org.portal.privacy_notice.clone(),
        error,
    }
}

pub async fn show(
    State(state): State<AppState>,
    Path((slug, number)): Path<(String, u64)>,
    session: Option<PortalSession>,
) -> Response {
    let (me, org) = match member(&state, session, &slug).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match own_ticket(&state, &me, number).await {
        Ok((t, events, handler)) => render(&ticket_page(&org, &me, &t, &events, handler, None)),
        Err(r) => r,
    }
}

/// `POST /portal/SLUG/tickets/N` (a form with files): the user's reply to their ticket.
pub async fn reply(
    State(state): State<AppState>,
    Path((slug, number)): Path<(String, u64)>,
    session: Option<PortalSession>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    // Signed in before the body is read: only a portal user's upload costs a read.
    let Some(me) = of_org(session, &slug) else {
        return Redirect::to(&format!("/portal/{slug}")).into_response();
    };
    let Ok(multipart) = multipart else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The form was not sent as a form with files.",
        );
    };
    let upload = match Upload::read(multipart, crate::upload::PORTAL_FILES).await {
        Ok(u) => u,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
    if !me.csrf_ok(&upload.field("csrf")) {
        return forged();
    }
    let reply = RequesterReply {
        org: slug.clone(),
        requester: me.email.clone(),
        ticket: number,
        text: upload.field("text"),
        files: upload.files,
    };
    match state.desk.reply_as_requester(reply).await {
        Ok(()) => Redirect::to(&format!("/portal/{slug}/tickets/{number}")).into_response(),
        Err(DeskError::Invalid(why)) => {
            let org = match org(&state, &slug).await {
                Ok(o) => o,
                Err(r) => return r,
            };
            let (ticket, events, handler) = match own_ticket(&state, &me, number).await {
                Ok(v) => v,
                Err(r) => return r,
            };
            let mut r = render(&ticket_page(
                &org,
                &me,
                &ticket,
                &events,
                handler,
                Some(why),
            ));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
        Err(e) => crate::ApiError::from(e).into_page(),
    }
}
