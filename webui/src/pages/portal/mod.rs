//! The end-user portal of one organization (`/portal/SLUG`). Here: its front page (the
//! request form with the organization's texts, "my tickets" searched and paged, or the way
//! in) and what the parts share; the ways in and out in `access`, requests in `requests`,
//! a user's own ticket and replies in `tickets`.

mod access;
mod requests;
mod tickets;

use crate::pages::{refuse, render};
use crate::refusals::{forged, Refusal};
use crate::session::{FormToken, PortalSession};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use postdesk_desk::address::email_address;
use postdesk_desk::model::{FieldMode, Org, PortalMode, Ticket};
use serde::Deserialize;

pub use access::{directory_sign_in, request_link, set_mail, sign_out, with_link};
pub use requests::{submit, submit_as_guest};
pub use tickets::{reply, show};

const MAX_SUMMARY: usize = 300;
const MAX_TEXT: usize = 100_000;

struct Row {
    number: u64,
    summary: String,
    status: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "portal.html")]
struct PortalPage {
    slug: String,
    page_title: String,
    form_title: String,
    form_message: String,
    /// Shown with every form of the portal; empty: none.
    privacy_notice: String,
    displayed_email: String,
    /// "email_link", "guest" or "directory_token".
    mode: &'static str,
    guest: bool,
    form_action: String,
    categories: Vec<String>,
    /// "hidden", "optional" or "required".
    category_field: &'static str,
    signed_in: bool,
    email: String,
    /// Whether the signed-in user gets automatic mail (acknowledgements).
    automatic_mail: bool,
    /// The session's CSRF token, or the anonymous form token before sign-in.
    csrf: String,
    tickets: Vec<Row>,
    /// The search in the user's tickets, and the page of them shown (1 = newest).
    q: String,
    page: usize,
    newer: Option<usize>,
    older: Option<usize>,
    success_title: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

/// What a portal page says besides its form.
#[derive(Default)]
struct Message<'a> {
    success: bool,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

async fn org(state: &AppState, slug: &str) -> Result<Org, Response> {
    state
        .desk
        .portal(slug.to_string())
        .await
        .map_err(|e| Refusal::from(e).0)
}

/// The signed-in user of this portal and its organization; anyone else goes to the
/// portal's front page.
async fn member(
    state: &AppState,
    session: Option<PortalSession>,
    slug: &str,
) -> Result<(PortalSession, Org), Response> {
    let me = of_org(session, slug)
        .ok_or_else(|| Redirect::to(&format!("/portal/{slug}")).into_response())?;
    Ok((me, org(state, slug).await?))
}

/// The checks before a form posted without signing in (a link request, a guest request):
/// the browser's form token, the organization, that its portal takes this form (`mode`;
/// 404 saying `not_here` otherwise) and an email address. Returns the organization and the
/// address.
async fn anonymous_form(
    state: &AppState,
    slug: &str,
    form_token: &FormToken,
    csrf: &str,
    mode: PortalMode,
    not_here: &str,
    email: &str,
) -> Result<(Org, String), Response> {
    if !form_token.matches(csrf) {
        return Err(forged());
    }
    let org = org(state, slug).await?;
    if org.portal.mode != mode {
        return Err(refuse(StatusCode::NOT_FOUND, not_here));
    }
    match email_address(email) {
        Some(email) => Ok((org, email)),
        None => Err(bad_form(state, &org, None, form_token, "Enter your email address.").await),
    }
}

/// The session, if it is one of this organization's portal.
fn of_org(session: Option<PortalSession>, slug: &str) -> Option<PortalSession> {
    session.filter(|s| s.org == slug)
}

/// The signed-in user of this portal sending a form: anyone else goes to the portal's front
/// page, and a forged form is refused.
// The error is the handler's answer, returned at once, as `load`s elsewhere return it.
#[allow(clippy::result_large_err)]
fn form_user(
    session: Option<PortalSession>,
    slug: &str,
    csrf: &str,
) -> Result<PortalSession, Response> {
    let Some(me) = of_org(session, slug) else {
        return Err(Redirect::to(&format!("/portal/{slug}")).into_response());
    };
    if !me.csrf_ok(csrf) {
        return Err(forged());
    }
    Ok(me)
}

/// The portal's front page: for a signed-in user the form and their tickets; otherwise
/// the way in that the organization chose. `form_token` is the anonymous form token.
async fn portal_page(
    state: &AppState,
    org: &Org,
    session: Option<&PortalSession>,
    form_token: &FormToken,
    message: Message<'_>,
) -> Response {
    front_page(
        state,
        org,
        session,
        form_token,
        message,
        &TicketList::default(),
    )
    .await
}

/// [`portal_page`] showing the page of "my tickets" that `list` asks for.
async fn front_page(
    state: &AppState,
    org: &Org,
    session: Option<&PortalSession>,
    form_token: &FormToken,
    message: Message<'_>,
    list: &TicketList,
) -> Response {
    let (found, automatic_mail) = match session {
        Some(s) => {
            let found = state
                .desk
                .requester_tickets(org.slug.clone(), s.email.clone())
                .await;
            match found {
                Ok(t) => t,
                Err(e) => return Refusal::from(e).0,
            }
        }
        None => (Vec::new(), true),
    };
    let shown = list.apply(found);
    let p = &org.portal;
    let or = |text: &str, default: String| {
        if text.trim().is_empty() {
            default
        } else {
            text.to_string()
        }
    };
    let (csrf, cookie) = match session {
        Some(s) => (s.csrf.clone(), None),
        None => form_token.for_form(state),
    };
    let guest = session.is_none() && p.mode == PortalMode::Guest;
    let page = render(&PortalPage {
        slug: org.slug.clone(),
        page_title: or(&p.page_title, format!("{} support", org.name)),
        form_title: or(&p.form_title, "New request".into()),
        form_message: p.form_message.clone(),
        privacy_notice: p.privacy_notice.clone(),
        // Users learn they can write by mail: the organization's address unless another
        // is set.
        displayed_email: or(
            &p.displayed_email,
            org.addresses.first().cloned().unwrap_or_default(),
        ),
        mode: match p.mode {
            PortalMode::EmailLink => "email_link",
            PortalMode::Guest => "guest",
            PortalMode::DirectoryToken => "directory_token",
        },
        guest,
        form_action: if guest {
            format!("/portal/{}/guest", org.slug)
        } else {
            format!("/portal/{}/tickets", org.slug)
        },
        categories: p.categories.clone(),
        category_field: match p.category_field {
            FieldMode::Hidden => "hidden",
            FieldMode::Optional => "optional",
            FieldMode::Required => "required",
        },
        signed_in: session.is_some(),
        email: session.map(|s| s.email.clone()).unwrap_or_default(),
        automatic_mail,
        csrf,
        q: list.q.clone(),
        page: shown.page,
        newer: (shown.page > 1).then(|| shown.page - 1),
        older: shown.more.then_some(shown.page + 1),
        tickets: shown
            .tickets
            .iter()
            .map(|t| Row {
                number: t.number,
                summary: t.summary.clone(),
                status: crate::pages::desk::label(&t.status),
                updated: crate::pages::desk::short_time(t.updated_at),
            })
            .collect(),
        success_title: message
            .success
            .then(|| or(&p.success_title, "Thank you".into())),
        notice: message.notice.map(str::to_string),
        error: message.error.map(str::to_string),
    });
    match cookie {
        Some(c) => ([(header::SET_COOKIE, c)], page).into_response(),
        None => page,
    }
}

/// A page answering a bad form: the front page with the error, status 400.
async fn bad_form(
    state: &AppState,
    org: &Org,
    session: Option<&PortalSession>,
    form_token: &FormToken,
    error: &str,
) -> Response {
    let mut r = portal_page(
        state,
        org,
        session,
        form_token,
        Message {
            error: Some(error),
            ..Default::default()
        },
    )
    .await;
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

pub async fn home(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    session: Option<PortalSession>,
    form_token: FormToken,
    Query(list): Query<TicketList>,
) -> Response {
    let org = match org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    front_page(
        &state,
        &org,
        of_org(session, &slug).as_ref(),
        &form_token,
        Message::default(),
        &list,
    )
    .await
}

/// Tickets shown on one page of the portal.
const TICKETS_PER_PAGE: usize = 20;

/// `?q=` searches the user's tickets by number or words of the summary; `?page=` pages
/// through them, newest first. Anything unreadable is the first page of all.
#[derive(Deserialize, Default)]
pub struct TicketList {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<String>,
}

struct Shown {
    tickets: Vec<Ticket>,
    page: usize,
    more: bool,
}

impl TicketList {
    fn apply(&self, tickets: Vec<Ticket>) -> Shown {
        let q = self.q.trim().to_lowercase();
        let number = q.trim_start_matches('#').parse::<u64>().ok();
        let words: Vec<&str> = q.split_whitespace().collect();
        let mut found: Vec<Ticket> = tickets
            .into_iter()
            .filter(|t| {
                Some(t.number) == number || {
                    let summary = t.summary.to_lowercase();
                    words.iter().all(|w| summary.contains(w))
                }
            })
            .collect();
        let pages = found.len().div_ceil(TICKETS_PER_PAGE).max(1);
        let page = self
            .page
            .as_deref()
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .clamp(1, pages);
        let start = (page - 1) * TICKETS_PER_PAGE;
        let more = found.len() > start + TICKETS_PER_PAGE;
        found.truncate(start + TICKETS_PER_PAGE);
        Shown {
            tickets: found.split_off(start.min(found.len())),
            page,
            more,
        }
    }
}
