//! Staff sign-in: with a password (argon2, throttled per address and per client) or an
//! emailed sign-in link (never blocked by the password throttle); setting a password;
//! signing out here or everywhere (which also voids the sign-in links still in mail).

use super::{refuse, render, Chrome};
use crate::client_ip::ClientIp;
use crate::forms::{CsrfOnly, StaffForm};
use crate::passwords::MAX_PASSWORD;
use crate::refusals::forged;
use crate::refusals::PageResult;
use crate::session::{self, FormToken, StaffSession};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use postdesk_desk::access::LINK_HOURS;
use postdesk_desk::audit::{AuditAction, Done};
use postdesk_desk::model::{LinkRefusal, Principal};
use serde::Deserialize;

const MIN_PASSWORD: usize = 10;

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    email: String,
    form_token: String,
    notice: Option<String>,
    error: Option<String>,
}

/// The sign-in page, setting the anonymous form token's cookie when the browser has none.
fn signin_page(
    state: &AppState,
    form_token: &FormToken,
    email: String,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let (token, cookie) = form_token.for_form(state);
    let page = render(&SignInPage {
        email,
        form_token: token,
        notice: notice.map(str::to_string),
        error: error.map(str::to_string),
    });
    match cookie {
        Some(c) => ([(header::SET_COOKIE, c)], page).into_response(),
        None => page,
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    alerts: bool,
    notice: Option<String>,
    error: Option<String>,
}

pub async fn form(State(state): State<AppState>, form_token: FormToken) -> Response {
    signin_page(&state, &form_token, String::new(), None, None)
}

#[derive(Deserialize)]
pub struct LinkRequest {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// `POST /signin/email`: mails a staff member a sign-in link. The page says the same for
/// any address, and requests are limited per address and per client IP.
pub async fn email_link(
    State(state): State<AppState>,
    client: ClientIp,
    form_token: FormToken,
    Form(f): Form<LinkRequest>,
) -> Response {
    if !form_token.matches(&f.csrf) {
        return forged();
    }
    let email = f.email.trim().to_ascii_lowercase();
    if state.limits.allow_link(&email, client).await {
        let (desk, base) = (state.desk.clone(), state.public_url.clone());
        super::after_answer("staff sign-in link not sent", async move {
            desk.mail_staff_link(email, String::new(), LINK_HOURS, base)
                .await
        });
    } else {
        tracing::warn!(client = %client, "staff link request rate limited");
    }
    signin_page(&state, &form_token, String::new(), Some("If this address belongs to an employee, a sign-in link is on its way. It works for 12 hours."), None)
}

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// The sign-in page with an error, its status and, when the client is to wait, a
/// Retry-After header.
fn refused_sign_in(
    state: &AppState,
    form_token: &FormToken,
    email: String,
    status: StatusCode,
    error: &str,
    retry_after: Option<u64>,
) -> Response {
    let mut page = signin_page(state, form_token, email, None, Some(error));
    *page.status_mut() = status;
    if let Some(seconds) = retry_after {
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    page
}

/// `POST /signin`. Attempts are limited per submitted address (known or not, so the
/// limit tells nothing) and per client before any hashing; the hashing itself runs a few
/// at a time. A throttled address can still sign in by emailed link, so guessing at
/// someone's password cannot lock them out.
pub async fn with_password(
    State(state): State<AppState>,
    client: ClientIp,
    form_token: FormToken,
    Form(c): Form<Credentials>,
) -> Response {
    // A forged sign-in would sign the victim in as the forger.
    if !form_token.matches(&c.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "The form was stale or forged. Reload the page and try again.",
        );
    }
    let email = c.email.trim().to_ascii_lowercase();
    if let Err(wait) = state.limits.allow_password(&email, client).await {
        tracing::warn!(email = %email, client = %client, "password sign-in throttled");
        let minutes = wait.seconds().div_ceil(60);
        let error = format!(
            "Too many sign-in attempts for this address or from your network. Try again in \
             {minutes} minute{}, or have a sign-in link mailed to you below.",
            if minutes == 1 { "" } else { "s" }
        );
        return refused_sign_in(
            &state,
            &form_token,
            email,
            StatusCode::TOO_MANY_REQUESTS,
            &error,
            Some(wait.seconds()),
        );
    }
    let known = match state.desk.password_of(email.clone()).await {
        Ok(k) => k,
        Err(e) => return crate::ApiError::from(e).into_page(),
    };
    // One answer, after the same work, for an unknown address, a staff member without a
    // password and a wrong password, so addresses do not leak.
    let (staff, hash) = known;
    let password = if c.password.len() > MAX_PASSWORD {
        String::new()
    } else {
        c.password
    };
    let matches = match state.passwords.verify(password, hash).await {
        Ok(m) => m,
        Err(crate::passwords::Busy) => {
            return refused_sign_in(
                &state,
                &form_token,
                email,
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy checking passwords. Try again in a few seconds.",
                Some(5),
            )
        }
    };
    let Some(staff) = staff.filter(|_| matches) else {
        tracing::info!(email = %email, client = %client, "password sign-in refused");
        return refused_sign_in(
            &state,
            &form_token,
            email,
            StatusCode::UNAUTHORIZED,
            "That email and password do not match.",
            None,
        );
    };
    let email = staff.email.clone();
    match session::sign_in(&state, Principal::Staff { email: staff.email }, "/desk").await {
        Ok(signed_in) => {
            record_sign_in(&state, email, &client, "by password").await;
            signed_in
        }
        Err(e) => crate::ApiError::from(e).into_page(),
    }
}

/// Records a sign-in that gave a session (`answered` is the redirect that carries it).
async fn record_sign_in(state: &AppState, email: String, client: &ClientIp, how: &str) {
    let done = Done::new(AuditAction::SignedIn, None, how);
    crate::audit::record(state, email, client.to_string(), done).await;
}

/// `/signin/link/TOKEN`: an emailed sign-in link.
pub async fn with_link(
    State(state): State<AppState>,
    client: ClientIp,
    Path(token): Path<String>,
) -> PageResult {
    let used = state.desk.use_sign_in_link(token).await?;
    Ok(match used {
        Ok(Principal::Staff { email }) => {
            let principal = Principal::Staff {
                email: email.clone(),
            };
            let signed_in = session::sign_in(&state, principal, "/desk").await?;
            record_sign_in(&state, email, &client, "by sign-in link").await;
            signed_in
        }
        Ok(Principal::Portal { .. }) => {
            refuse(StatusCode::BAD_REQUEST, "This link is for the portal.")
        }
        Err(why) => refuse(StatusCode::FORBIDDEN, link_refusal(why)),
    })
}

/// What a person is told when a sign-in link does not work.
pub fn link_refusal(why: LinkRefusal) -> &'static str {
    match why {
        LinkRefusal::Expired => "This sign-in link has expired. Ask for a new one.",
        LinkRefusal::UsedUp => "This sign-in link has been used too often. Ask for a new one.",
        LinkRefusal::Unknown => "This sign-in link is not valid.",
    }
}

pub async fn sign_out(
    State(state): State<AppState>,
    StaffForm { me, .. }: StaffForm<CsrfOnly>,
) -> PageResult {
    state.desk.end_session(me.id.clone()).await?;
    Ok(session::signed_out(&state, "/signin"))
}

pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    StaffForm { me, .. }: StaffForm<CsrfOnly>,
) -> PageResult {
    let principal = Principal::Staff {
        email: me.staff.email.clone(),
    };
    state.desk.end_all_sessions(principal).await?;
    Ok(session::signed_out(&state, "/signin"))
}

pub async fn account(me: StaffSession) -> Response {
    render(&AccountPage {
        chrome: Chrome::of(&me),
        alerts: me.staff.alerts,
        notice: None,
        error: None,
    })
}

#[derive(Deserialize)]
pub struct NewPassword {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

pub async fn set_password(
    State(state): State<AppState>,
    me: StaffSession,
    Form(f): Form<NewPassword>,
) -> Response {
    if !me.csrf_ok(&f.csrf) {
        return forged();
    }
    let page = |notice: Option<&str>, error: Option<&str>| AccountPage {
        chrome: Chrome::of(&me),
        alerts: me.staff.alerts,
        notice: notice.map(str::to_string),
        error: error.map(str::to_string),
    };
    if f.password.chars().count() < MIN_PASSWORD || f.password.len() > MAX_PASSWORD {
        let mut r = render(&page(
            None,
            Some("The password must have at least 10 characters (and at most 1024 bytes)."),
        ));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    let hash = match state.passwords.hash(f.password).await {
        Ok(Some(h)) => h,
        Ok(None) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        Err(crate::passwords::Busy) => {
            let mut r = render(&page(
                None,
                Some("The server is busy checking passwords. Try again in a few seconds."),
            ));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
    };
    if let Err(e) = state.desk.set_own_password(me.staff.clone(), hash).await {
        return crate::ApiError::from(e).into_page();
    }
    let detail = format!("{} set their password", me.staff.email);
    me.record(&state, Done::new(AuditAction::StaffChanged, None, detail))
        .await;
    render(&page(Some("Password set."), None))
}

#[derive(Deserialize)]
pub struct Alerts {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    alerts: String,
}

/// Turns one's own mail alerts on or off (the bell keeps every entry either way).
pub async fn set_alerts(
    State(state): State<AppState>,
    me: StaffSession,
    Form(f): Form<Alerts>,
) -> PageResult {
    if !me.csrf_ok(&f.csrf) {
        return Err(forged().into());
    }
    let on = match f.alerts.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(refuse(StatusCode::BAD_REQUEST, "Choose on or off.").into()),
    };
    state.desk.set_own_alerts(me.staff.clone(), on).await?;
    Ok(Redirect::to("/account").into_response())
}
