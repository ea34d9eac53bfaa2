//! Requests from the portal: the form signed in (with files) and as a guest, checked and
//! opened as tickets through the desk.

use crate::client_ip::ClientIp;
use crate::refusals::forged;
use crate::session::{FormToken, PortalSession};
use crate::upload::Upload;
use crate::AppState;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use postdesk_desk::files::NewFile;
use postdesk_desk::model::guest_request_text;
use postdesk_desk::model::{FieldMode, Org, PortalMode, TicketType};
use postdesk_desk::opening::PortalRequest;
use serde::Deserialize;

use super::{anonymous_form, bad_form, member, portal_page, Message, MAX_SUMMARY, MAX_TEXT};

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
    let (me, org) = match member(&state, session, &slug).await {
        Ok(v) => v,
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
    let checked = anonymous_form(
        &state,
        &slug,
        &form_token,
        &f.csrf,
        PortalMode::Guest,
        "This portal does not take requests without signing in.",
        &f.email,
    )
    .await;
    let (org, email) = match checked {
        Ok(v) => v,
        Err(r) => return r,
    };
    // The same rule as for mail: the whitelist decides who may write as an end user.
    if !org.allows_sender(Some(&email)) {
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
    request.description = guest_request_text(&email, &request.description);
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
