//! Staff sign-in: with a password (argon2) or an emailed sign-in link; setting a password;
//! signing out here or everywhere.

use super::{blocking, refuse, render, Chrome};
use crate::forms::forged;
use crate::session::{self, FormToken, StaffSession};
use crate::AppState;
use argon2::password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use askama::Template;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use postdesk_store::{LinkRefusal, Principal};
use serde::Deserialize;
use std::net::SocketAddr;

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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form_token: FormToken,
    Form(f): Form<LinkRequest>,
) -> Response {
    if !form_token.matches(&f.csrf) {
        return forged();
    }
    let email = f.email.trim().to_ascii_lowercase();
    if state.link_limits.allow(&email, peer.ip()) {
        let mailing = state.clone();
        let lookup = email.clone();
        let sent = blocking(move || {
            if mailing.store.staff(&lookup)?.is_some() {
                crate::links::mail_staff_link(&mailing, &lookup, "", session::LINK_HOURS)?;
            }
            Ok(())
        })
        .await;
        if let Err(r) = sent {
            return r;
        }
    } else {
        tracing::warn!(ip = %peer.ip(), "staff link request rate limited");
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

/// Hashes a new password (argon2id, random salt).
pub fn hash_password(password: &str) -> Option<String> {
    let hash: PasswordHash = Argon2::default().hash_password(password.as_bytes()).ok()?;
    Some(hash.to_string())
}

fn password_matches(password: &str, stored: &str) -> bool {
    stored.parse::<PasswordHash>().is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

pub async fn with_password(
    State(state): State<AppState>,
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
    let store = state.store.clone();
    let lookup = email.clone();
    let known = match blocking(move || {
        Ok(match store.staff(&lookup)? {
            Some(s) => store.password_hash(&s.email)?.map(|h| (s, h)),
            None => None,
        })
    })
    .await
    {
        Ok(k) => k,
        Err(r) => return r,
    };
    // One answer for an unknown address and a wrong password, so addresses do not leak.
    let verified = match known {
        Some((staff, hash)) => {
            let password = c.password;
            tokio::task::spawn_blocking(move || password_matches(&password, &hash).then_some(staff))
                .await
                .ok()
                .flatten()
        }
        None => None,
    };
    let Some(staff) = verified else {
        tracing::info!(email = %email, "password sign-in refused");
        let mut page = signin_page(
            &state,
            &form_token,
            email,
            None,
            Some("That email and password do not match."),
        );
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return page;
    };
    session::sign_in(&state, Principal::Staff { email: staff.email }, "/desk")
}

/// `/signin/link/TOKEN`: an emailed sign-in link.
pub async fn with_link(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let store = state.store.clone();
    let now = state.clock.now();
    let used = match blocking(move || store.use_login_link(&token, now)).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match used {
        Ok(principal @ Principal::Staff { .. }) => session::sign_in(&state, principal, "/desk"),
        Ok(Principal::Portal { .. }) => {
            refuse(StatusCode::BAD_REQUEST, "This link is for the portal.")
        }
        Err(why) => refuse(StatusCode::FORBIDDEN, link_refusal(why)),
    }
}

/// What a person is told when a sign-in link does not work.
pub fn link_refusal(why: LinkRefusal) -> &'static str {
    match why {
        LinkRefusal::Expired => "This sign-in link has expired. Ask for a new one.",
        LinkRefusal::UsedUp => "This sign-in link has been used too often. Ask for a new one.",
        LinkRefusal::Unknown => "This sign-in link is not valid.",
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    me: StaffSession,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !me.csrf_ok(&f.csrf) {
        return forged();
    }
    let store = state.store.clone();
    let id = me.id.clone();
    if let Err(r) = blocking(move || store.end_session(&id)).await {
        return r;
    }
    session::signed_out(&state, "/signin")
}

pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    me: StaffSession,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if !me.csrf_ok(&f.csrf) {
        return forged();
    }
    let store = state.store.clone();
    let principal = Principal::Staff {
        email: me.staff.email.clone(),
    };
    if let Err(r) = blocking(move || store.end_all_sessions(&principal)).await {
        return r;
    }
    session::signed_out(&state, "/signin")
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
    if f.password.chars().count() < MIN_PASSWORD {
        let mut r = render(&page(
            None,
            Some("The password must have at least 10 characters."),
        ));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    let password = f.password;
    let Some(hash) = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .ok()
        .flatten()
    else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
    };
    let store = state.store.clone();
    let email = me.staff.email.clone();
    if let Err(r) = blocking(move || store.set_password_hash(&email, &hash)).await {
        return r;
    }
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
) -> Response {
    if !me.csrf_ok(&f.csrf) {
        return forged();
    }
    let on = match f.alerts.as_str() {
        "on" => true,
        "off" => false,
        _ => return refuse(StatusCode::BAD_REQUEST, "Choose on or off."),
    };
    let store = state.store.clone();
    let email = me.staff.email.clone();
    match blocking(move || store.set_staff_alerts(&email, on)).await {
        Ok(()) => Redirect::to("/account").into_response(),
        Err(r) => r,
    }
}
