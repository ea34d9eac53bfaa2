//! Browser sessions: a random id in an HttpOnly, SameSite=Lax cookie (Secure and
//! `__Host-` under HTTPS), stored hashed; every form carries the session's CSRF token,
//! compared in constant time.

use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use postdesk_desk::access::SESSION_DAYS;
use postdesk_desk::audit::Done;
use postdesk_desk::model::{BellItem, Principal, Staff, WebSession};
use postdesk_desk::tokens::new_token;

const COOKIE: &str = "postdesk_session";
/// Bell entries shown in every staff page's header.
pub const BELL_SHOWN: usize = 5;

fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_string())
}

/// A cookie's name as this site sets it: under HTTPS with the `__Host-` prefix, which
/// browsers accept only from a secure origin, with Secure, Path=/ and no Domain, so
/// neither a neighbouring subdomain nor a plain-HTTP answer can plant or replace it.
fn cookie_name(state: &AppState, name: &str) -> String {
    if state.secure_cookies {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

/// The attributes every cookie of this site carries.
fn cookie_attributes(state: &AppState) -> &'static str {
    if state.secure_cookies {
        "Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Lax"
    }
}

fn session_id(parts: &Parts, state: &AppState) -> Option<String> {
    cookie_value(parts, &cookie_name(state, COOKIE))
}

/// Starts a session for `principal` and sends the browser to `to` with its cookie; an
/// error when no session could be made (so callers record a sign-in only once it is).
pub async fn sign_in(
    state: &AppState,
    principal: Principal,
    to: &str,
) -> Result<Response, postdesk_desk::DeskError> {
    let id = state.desk.start_session(principal).await?;
    Ok((
        [(
            header::SET_COOKIE,
            cookie(state, &id, SESSION_DAYS * 86_400),
        )],
        Redirect::to(to),
    )
        .into_response())
}

/// Removes the session cookie and sends the browser to `to` (the session itself is
/// ended in the store by the caller).
pub fn signed_out(state: &AppState, to: &str) -> Response {
    (
        [(header::SET_COOKIE, cookie(state, "", 0))],
        Redirect::to(to),
    )
        .into_response()
}

/// The cookie header that sets (or, with max_age 0, removes) the session cookie.
pub fn cookie(state: &AppState, id: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{}={id}; {}; Max-Age={max_age}",
        cookie_name(state, COOKIE),
        cookie_attributes(state)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("postdesk_session=; Path=/; Max-Age=0"))
}

/// A signed-in staff member; pages that need one redirect to the sign-in page otherwise.
pub struct StaffSession {
    pub staff: Staff,
    pub id: String,
    pub csrf: String,
    /// The newest bell entries and how many of them are unread, for every page's header.
    pub bell: Vec<BellItem>,
    pub unread: usize,
    /// The client's address (through trusted proxies), for the audit log.
    pub from: String,
}

impl StaffSession {
    /// Records in the audit log that this staff member did `done`.
    pub async fn record(&self, state: &AppState, done: Done) {
        crate::audit::record(state, self.staff.email.clone(), self.from.clone(), done).await;
    }

    /// Whether a submitted form's token is this session's.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        same_token(&self.csrf, submitted)
    }
}

/// Whether a submitted form's token is the session's, compared in constant time.
fn same_token(expected: &str, submitted: &str) -> bool {
    let (a, b) = (expected.as_bytes(), submitted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request's live session, if it has one.
async fn current(parts: &Parts, state: &AppState) -> Option<(String, WebSession)> {
    let id = session_id(parts, state)?;
    let session = state.desk.session(id.clone()).await.ok()??;
    Some((id, session))
}

impl FromRequestParts<AppState> for StaffSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_signin = || Redirect::to("/signin").into_response();
        let id = session_id(parts, state).ok_or_else(to_signin)?;
        let visit = state
            .desk
            .staff_visit(id.clone(), BELL_SHOWN)
            .await
            .ok()
            .flatten()
            .ok_or_else(to_signin)?;
        let from = crate::client_ip::ClientIp::from_request_parts(parts, state)
            .await?
            .to_string();
        Ok(StaffSession {
            staff: visit.staff,
            id,
            csrf: visit.csrf,
            bell: visit.bell,
            unread: visit.unread,
            from,
        })
    }
}

/// An end user signed in to one organization's portal (pages check the organization).
pub struct PortalSession {
    pub org: String,
    pub email: String,
    pub id: String,
    pub csrf: String,
}

impl PortalSession {
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        same_token(&self.csrf, submitted)
    }
}

/// Pages take `Option<PortalSession>` and show the sign-in form without one.
impl axum::extract::OptionalFromRequestParts<AppState> for PortalSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(match current(parts, state).await {
            Some((id, session)) => match session.principal {
                Principal::Portal { org, email } => Some(PortalSession {
                    org,
                    email,
                    id,
                    csrf: session.csrf,
                }),
                Principal::Staff { .. } => None,
            },
            None => None,
        })
    }
}

/// The cookie of the anonymous form token: forms shown before anyone signs in (link
/// requests, the guest form) carry it in a field too, and a post counts only
/// when both agree (a double-submit token: another site can neither read nor set it).
const FORM_COOKIE: &str = "postdesk_form";

/// The browser's anonymous form token, if it has one.
pub struct FormToken(pub Option<String>);

impl FromRequestParts<AppState> for FormToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(FormToken(cookie_value(
            parts,
            &cookie_name(state, FORM_COOKIE),
        )))
    }
}

impl FormToken {
    /// Whether a posted form's token matches the browser's cookie.
    pub fn matches(&self, submitted: &str) -> bool {
        self.0
            .as_deref()
            .is_some_and(|t| !t.is_empty() && same_token(t, submitted))
    }

    /// The token to put in a form, and the cookie to set when the browser has none yet.
    pub fn for_form(&self, state: &AppState) -> (String, Option<HeaderValue>) {
        match &self.0 {
            Some(t) if !t.is_empty() => (t.clone(), None),
            _ => {
                let t = new_token();
                let cookie = HeaderValue::from_str(&format!(
                    "{}={t}; {}",
                    cookie_name(state, FORM_COOKIE),
                    cookie_attributes(state)
                ))
                .ok();
                (t, cookie)
            }
        }
    }
}
