//! "+ New ticket" in the desk: a staff member opens a ticket for someone (requester,
//! summary, type, priority, assignee, text, files); the requester is mailed the text.

use super::desk::TYPES;
use super::{render, Chrome};
use crate::forms::StaffUpload;
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::upload::Upload;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use postdesk_desk::opening::{TicketChoices, TicketRequest};
use postdesk_desk::DeskError;

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

/// An option of a select: value, label, and whether it is chosen.
struct Option_ {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "new_ticket.html")]
struct NewTicketPage {
    chrome: Chrome,
    orgs: Vec<Option_>,
    types: Vec<Option_>,
    priorities: Vec<Option_>,
    assignees: Vec<Option_>,
    requester: String,
    summary: String,
    text: String,
    notify: bool,
    error: Option<String>,
}

/// What the form was filled in with (empty on first show).
#[derive(Default)]
struct Filled {
    org: String,
    requester: String,
    summary: String,
    text: String,
    ticket_type: String,
    priority: String,
    assignee: String,
    notify: bool,
}

fn options(values: impl IntoIterator<Item = (String, String)>, chosen: &str) -> Vec<Option_> {
    values
        .into_iter()
        .map(|(value, label)| Option_ {
            selected: value == chosen,
            value,
            label,
        })
        .collect()
}

fn page(me: &StaffSession, c: TicketChoices, f: Filled, error: Option<String>) -> Response {
    let fixed = |list: &[&str]| {
        list.iter()
            .map(|v| (v.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let priority = if f.priority.is_empty() {
        "normal"
    } else {
        &f.priority
    };
    let assignees = c
        .assignees
        .into_iter()
        .map(|(email, name)| (email.clone(), format!("{name} <{email}>")));
    let mut r = render(&NewTicketPage {
        chrome: Chrome::of(me),
        orgs: options(c.orgs, &f.org),
        types: options(fixed(&TYPES), &f.ticket_type),
        priorities: options(fixed(&PRIORITIES), priority),
        assignees: options(assignees, &f.assignee),
        requester: f.requester,
        summary: f.summary,
        text: f.text,
        notify: f.notify,
        error: error.clone(),
    });
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

/// `GET /desk/new`.
pub async fn form(State(state): State<AppState>, me: StaffSession) -> PageResult {
    let choices = state.desk.ticket_choices().await?;
    let filled = Filled {
        notify: true,
        ..Filled::default()
    };
    Ok(page(&me, choices, filled, None))
}

fn filled(u: &Upload) -> Filled {
    Filled {
        org: u.field("org"),
        requester: u.field("requester"),
        summary: u.field("summary"),
        text: u.field("text"),
        ticket_type: u.field("type"),
        priority: u.field("priority"),
        assignee: u.field("assignee"),
        notify: u.field("notify") == "yes",
    }
}

/// `POST /desk/new` (a form with files): opens the ticket and shows it.
pub async fn open(
    State(state): State<AppState>,
    StaffUpload { me, upload }: StaffUpload,
) -> PageResult {
    let upload = match upload {
        Ok(u) => u,
        Err(why) => {
            let choices = state.desk.ticket_choices().await?;
            return Ok(page(&me, choices, Filled::default(), Some(why)));
        }
    };
    let f = filled(&upload);
    let request = TicketRequest {
        org: f.org.clone(),
        requester: f.requester.clone(),
        summary: f.summary.clone(),
        text: f.text.clone(),
        ticket_type: Some(f.ticket_type.clone()),
        priority: Some(f.priority.clone()),
        assignee: Some(f.assignee.clone()),
        files: upload.files,
        notify: f.notify,
    };
    match state.desk.open_ticket(me.staff.clone(), request).await {
        Ok((ticket, _)) => {
            Ok(Redirect::to(&format!("/desk/tickets/{}", ticket.number)).into_response())
        }
        Err(DeskError::Invalid(why)) => {
            let choices = state.desk.ticket_choices().await?;
            Ok(page(&me, choices, f, Some(super::sentence(&why))))
        }
        Err(e) => Err(e.into()),
    }
}
