//! The end-user portal of one organization (`/portal/SLUG`): sign-in by emailed link or by
//! the organization's directory token, or guest requests without sign-in; the request form
//! with the organization's texts and categories, "my tickets" (open and closed) with their
//! public conversation, and replies.

use super::{blocking, refuse, render};
use crate::client_ip::ClientIp;
use crate::refusals::forged;
use crate::session::{self, FormToken, PortalSession};
use crate::upload::Upload;
use crate::AppState;
use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use postdesk_desk::address::email_address;
use postdesk_desk::files::NewFile;
use postdesk_desk::opening::{PortalRequest, RequesterReply};
use postdesk_desk::DeskError;
use postdesk_store::{
    Event, EventKind, FieldMode, Org, PortalMode, Principal, Ticket, TicketType, Visibility,
};
use serde::Deserialize;

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
    error: Option<String>,
}

async fn org(state: &AppState, slug: &str) -> Result<Org, Response> {
    let store = state.store.clone();
    let lookup = slug.to_string();
    blocking(move || store.org(&lookup))
        .await?
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "There is no such support portal."))
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
    list: &TicketList,
) -> Response {
    let (found, automatic_mail) = match session {
        Some(s) => {
            let store = state.store.clone();
            let (slug, email) = (org.slug.clone(), s.email.clone());
            let found = blocking(move || {
                let mut tickets = store.tickets_of(&email, false, usize::MAX)?;
                tickets.retain(|t| t.org == slug);
                Ok((tickets, store.contact_alerts(&email)?))
            })
            .await;
            match found {
                Ok(t) => t,
                Err(r) => return r,
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
                status: super::desk::label(&t.status),
                updated: super::desk::short_time(t.updated_at),
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
        &TicketList::default(),
    )
    .await;
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

/// The request form's fields, checked against the organization's settings.
struct Request {
    ticket_type: TicketType,
    summary: String,
    description: String,
    category: Option<String>,
    files: Vec<NewFile>,
}

fn check_request(
    org: &Org,
    ticket_type: &str,
    summary: &str,
    description: &str,
    category: &str,
) -> Result<Request, String> {
    // Question unless the user picked another (an older form sends no type).
    let ticket_type = match ticket_type.trim() {
        "" => TicketType::Question,
        t => t
            .parse::<TicketType>()
            .map_err(|_| format!("{t:?} is not a type: question, incident or bug."))?,
    };
    let summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    let description = description.trim().to_string();
    if summary.is_empty() || description.is_empty() {
        return Err("Give a summary and a description.".into());
    }
    if summary.chars().count() > MAX_SUMMARY || description.len() > MAX_TEXT {
        return Err(format!(
            "The summary may have {MAX_SUMMARY} characters, the description {MAX_TEXT}."
        ));
    }
    let category = category.trim();
    let category = match org.portal.category_field {
        FieldMode::Hidden => None,
        _ if category.is_empty() => {
            if org.portal.category_field == FieldMode::Required {
                return Err("Choose a category.".into());
            }
            None
        }
        _ => match org
            .portal
            .categories
            .iter()
            .find(|c| c.as_str() == category)
        {
            Some(c) => Some(c.clone()),
            None => return Err(format!("{category:?} is not one of the categories.")),
        },
    };
    Ok(Request {
        ticket_type,
        summary,
        description,
        category,
        files: Vec::new(),
    })
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
    portal_page(
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

#[derive(Deserialize)]
pub struct LinkRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

pub async fn request_link(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    client: ClientIp,
    form_token: FormToken,
    Form(f): Form<LinkRequest>,
) -> Response {
    if !form_token.matches(&f.csrf) {
        return forged();
    }
    let org = match org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if org.portal.mode != PortalMode::EmailLink {
        return refuse(
            StatusCode::NOT_FOUND,
            "This portal does not sign in by emailed link.",
        );
    }
    let Some(email) = email_address(&f.email) else {
        return bad_form(&state, &org, None, &form_token, "Enter your email address.").await;
    };
    // The same answer whatever happens next, so the page tells nobody which addresses
    // may use the portal or were limited.
    let answer =
        "If this address can use the portal, a sign-in link is on its way. It works for 12 hours.";
    let domain = email.rsplit_once('@').map(|(_, d)| d.to_string());
    if !org.allows_sender_domain(domain.as_deref()) {
        tracing::info!(org = %slug, "portal link refused: domain not on the whitelist");
    } else if !state.limits.allow_link(&email, client) {
        tracing::warn!(org = %slug, client = %client, "portal link request rate limited");
    } else {
        let (mailing, mail_org) = (state.clone(), org.clone());
        let queued = blocking(move || {
            crate::links::mail_portal_link(&mailing, &mail_org, &email, session::LINK_HOURS)
        })
        .await;
        if let Err(r) = queued {
            return r;
        }
    }
    portal_page(
        &state,
        &org,
        None,
        &form_token,
        Message {
            notice: Some(answer),
            ..Default::default()
        },
        &TicketList::default(),
    )
    .await
}

/// `/portal/link/TOKEN`: the emailed link opens the portal signed in.
pub async fn with_link(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let store = state.store.clone();
    let now = state.clock.now();
    let used = match blocking(move || store.use_login_link(&token, now)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match used {
        Ok(principal @ Principal::Portal { .. }) => {
            let Principal::Portal { org, .. } = &principal else {
                return refuse(StatusCode::BAD_REQUEST, "This link is not for the portal.");
            };
            let target = format!("/portal/{org}");
            session::sign_in(&state, principal.clone(), &target)
        }
        Ok(Principal::Staff { .. }) => {
            refuse(StatusCode::BAD_REQUEST, "This link is not for the portal.")
        }
        Err(why) => refuse(StatusCode::FORBIDDEN, super::signin::link_refusal(why)),
    }
}

#[derive(Deserialize)]
pub struct NewRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "type")]
    ticket_type: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
}

#[derive(Deserialize)]
pub struct GuestRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default, rename = "type")]
    ticket_type: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
}

/// `POST /portal/SLUG/tickets` (multipart): a signed-in user's request, with attachments.
pub async fn submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    session: Option<PortalSession>,
    form_token: FormToken,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let Some(me) = of_org(session, &slug) else {
        return Redirect::to(&format!("/portal/{slug}")).into_response();
    };
    let org = match org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Ok(multipart) = multipart else {
        return bad_form(
            &state,
            &org,
            Some(&me),
            &form_token,
            "The form was not sent as a form with files.",
        )
        .await;
    };
    let upload = match Upload::read(multipart, crate::upload::PORTAL_FILES).await {
        Ok(u) => u,
        Err(why) => return bad_form(&state, &org, Some(&me), &form_token, &why).await,
    };
    let f = NewRequest {
        csrf: upload.field("csrf"),
        ticket_type: upload.field("type"),
        summary: upload.field("summary"),
        description: upload.field("description"),
        category: upload.field("category"),
    };
    let files = upload.files;
    if !me.csrf_ok(&f.csrf) {
        return forged();
    }
    let mut request = match check_request(
        &org,
        &f.ticket_type,
        &f.summary,
        &f.description,
        &f.category,
    ) {
        Ok(r) => r,
        Err(e) => return bad_form(&state, &org, Some(&me), &form_token, &e).await,
    };
    request.files = files;
    let number = match open(&state, &org, me.email.clone(), request).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let notice = format!("Your request is ticket #{number}; we will answer by mail and here.");
    portal_page(
        &state,
        &org,
        Some(&me),
        &form_token,
        Message {
            success: true,
            notice: Some(&notice),
            error: None,
        },
        &TicketList::default(),
    )
    .await
}

/// The ticket's creator in guest mode: a placeholder without an address, so nothing is
/// mailed to it; staff set the real contact later.
pub const GUEST: &str = "Portal Guest";

/// `POST /portal/SLUG/guest`: a request without sign-in (guest mode only), from an address
/// the organization's sender whitelist allows, limited per client.
pub async fn submit_as_guest(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    client: ClientIp,
    form_token: FormToken,
    Form(f): Form<GuestRequest>,
) -> Response {
    if !form_token.matches(&f.csrf) {
        return forged();
    }
    let org = match org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if org.portal.mode != PortalMode::Guest {
        return refuse(
            StatusCode::NOT_FOUND,
            "This portal does not take requests without signing in.",
        );
    }
    let Some(email) = email_address(&f.email) else {
        return bad_form(&state, &org, None, &form_token, "Enter your email address.").await;
    };
    // The same rule as for mail: the whitelist decides who may write as an end user.
    let domain = email.rsplit_once('@').map(|(_, d)| d.to_string());
    if !org.allows_sender_domain(domain.as_deref()) {
        tracing::info!(org = %slug, "guest request refused: domain not on the whitelist");
        let mut r = bad_form(
            &state,
            &org,
            None,
            &form_token,
            "This portal only takes requests from the addresses its organization has allowed; \
             use your work address.",
        )
        .await;
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let mut request = match check_request(
        &org,
        &f.ticket_type,
        &f.summary,
        &f.description,
        &f.category,
    ) {
        Ok(r) => r,
        Err(e) => return bad_form(&state, &org, None, &form_token, &e).await,
    };
    if let Err(wait) = state.limits.allow_guest(client) {
        tracing::warn!(org = %slug, client = %client, "guest request rate limited");
        let mut r = bad_form(
            &state,
            &org,
            None,
            &form_token,
            "Too many requests from your network; try again later or write by mail.",
        )
        .await;
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait.seconds()));
        return r;
    }
    // The given address goes on top of the text: it is unverified, so it is not the contact.
    request.description = format!("{email} wrote:\n\n{}", request.description);
    let number = match open(&state, &org, GUEST.to_string(), request).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let notice = format!("Your request is ticket #{number}. We will answer by mail.");
    portal_page(
        &state,
        &org,
        None,
        &form_token,
        Message {
            success: true,
            notice: Some(&notice),
            error: None,
        },
        &TicketList::default(),
    )
    .await
}

/// Opens the ticket; returns its number.
async fn open(state: &AppState, org: &Org, requester: String, r: Request) -> Result<u64, Response> {
    let request = PortalRequest {
        org: org.slug.clone(),
        requester,
        ticket_type: r.ticket_type,
        summary: r.summary,
        text: r.description,
        category: r.category,
        files: r.files,
    };
    state
        .desk
        .open_request(request)
        .await
        .map_err(|e| crate::ApiError::from(e).into_page())
}

#[derive(Deserialize)]
pub struct Sso {
    #[serde(default)]
    token: String,
}

/// `GET /portal/SLUG/sso?token=JWT`: the organization's sign-in service sends its users
/// here with a directory token (directory-token mode only).
pub async fn directory_sign_in(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<Sso>,
) -> Response {
    let org = match org(&state, &slug).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    if org.portal.mode != PortalMode::DirectoryToken {
        return refuse(
            StatusCode::NOT_FOUND,
            "This portal does not take directory tokens.",
        );
    }
    let store = state.store.clone();
    let lookup = slug.clone();
    let secret =
        match blocking(move || store.directory_secret(&lookup)).await {
            Ok(Some(s)) => s,
            Ok(None) => return refuse(
                StatusCode::FORBIDDEN,
                "This portal has no directory secret yet; its administrators must generate one.",
            ),
            Err(r) => return r,
        };
    let now = state.clock.now().unix_timestamp();
    let verified = match crate::directory_token::verify(&q.token, &secret, &slug, now) {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(org = %slug, reason = ?e, "directory token refused");
            return refuse(StatusCode::FORBIDDEN, e.message());
        }
    };
    // Single use: a token seen in a log, a Referer or a browser history opens nothing.
    let store = state.store.clone();
    let (org_slug, jti, expires) = (slug.clone(), verified.jti.clone(), verified.expires);
    match blocking(move || store.use_directory_token(&org_slug, &jti, expires, now)).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(org = %slug, "directory token used again");
            let e = crate::directory_token::TokenError::Replayed;
            return refuse(StatusCode::FORBIDDEN, e.message());
        }
        Err(r) => return r,
    }
    let target = format!("/portal/{slug}");
    let principal = Principal::Portal {
        org: slug,
        email: verified.email,
    };
    session::sign_in(&state, principal, &target)
}

/// The ticket, if it is this user's in this organization.
async fn own_ticket(
    state: &AppState,
    me: &PortalSession,
    number: u64,
) -> Result<(Ticket, Vec<Event>, String), Response> {
    let store = state.store.clone();
    let (org, email) = (me.org.clone(), me.email.clone());
    let found = blocking(move || {
        let Some(t) = store
            .ticket(number)?
            .filter(|t| t.org == org && t.requester == email)
        else {
            return Ok(None);
        };
        let handler = match &t.assignee {
            Some(a) => store.staff(a)?.map(|s| s.name).unwrap_or_else(|| a.clone()),
            None => "not assigned yet".to_string(),
        };
        let events = store.events_for(number)?;
        Ok(Some((t, events, handler)))
    })
    .await?;
    found.ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            &format!("Ticket {number} not found."),
        )
    })
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
        status: super::desk::label(&t.status),
        handler,
        due: t.due.clone().unwrap_or_else(|| "—".into()),
        updated: super::desk::short_time(t.updated_at),
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
                at: super::desk::short_time(e.at),
                text: e.text.clone(),
            })
            .collect(),
        error,
    }
}

pub async fn show(
    State(state): State<AppState>,
    Path((slug, number)): Path<(String, u64)>,
    session: Option<PortalSession>,
) -> Response {
    let Some(me) = of_org(session, &slug) else {
        return Redirect::to(&format!("/portal/{slug}")).into_response();
    };
    let org = match org(&state, &slug).await {
        Ok(o) => o,
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
    let me = match form_user(session, &slug, &upload.field("csrf")) {
        Ok(me) => me,
        Err(r) => return r,
    };
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

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    session: Option<PortalSession>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let me = match form_user(session, &slug, &f.csrf) {
        Ok(me) => me,
        Err(r) => return r,
    };
    let store = state.store.clone();
    let id = me.id.clone();
    if let Err(r) = blocking(move || store.end_session(&id)).await {
        return r;
    }
    session::signed_out(&state, &format!("/portal/{slug}"))
}

#[derive(Deserialize)]
pub struct MailSetting {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    on: String,
}

/// `POST /portal/SLUG/mail`: a user turns their automatic mail on or off.
pub async fn set_mail(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    session: Option<PortalSession>,
    Form(f): Form<MailSetting>,
) -> Response {
    let me = match form_user(session, &slug, &f.csrf) {
        Ok(me) => me,
        Err(r) => return r,
    };
    let on = f.on == "yes";
    let store = state.store.clone();
    match blocking(move || store.set_contact_alerts(&me.email, on)).await {
        Ok(()) => Redirect::to(&format!("/portal/{slug}")).into_response(),
        Err(r) => r,
    }
}
