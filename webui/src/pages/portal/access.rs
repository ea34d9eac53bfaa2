//! The ways into a portal and out: an emailed sign-in link, the organization's directory
//! token, signing out; and the user's choice about automatic mail.

use crate::client_ip::ClientIp;
use crate::pages::{blocking, refuse};
use crate::refusals::forged;
use crate::session::{self, FormToken, PortalSession};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use postdesk_desk::address::email_address;
use postdesk_store::{PortalMode, Principal};
use serde::Deserialize;

use super::{bad_form, form_user, org, portal_page, Message};

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
        Err(why) => refuse(
            StatusCode::FORBIDDEN,
            crate::pages::signin::link_refusal(why),
        ),
    }
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
    match state.desk.set_automatic_mail(me.email.clone(), on).await {
        Ok(()) => Redirect::to(&format!("/portal/{slug}")).into_response(),
        Err(e) => crate::refusals::Refusal::from(e).0,
    }
}
