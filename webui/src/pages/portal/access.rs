//! The ways into a portal and out: an emailed sign-in link, the organization's directory
//! token, signing out; and the user's choice about automatic mail.

use crate::client_ip::ClientIp;
use crate::forms::CsrfOnly;
use crate::pages::refuse;
use crate::refusals::PageResult;
use crate::session::{self, FormToken, PortalSession};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use postdesk_desk::model::{PortalMode, Principal};
use serde::Deserialize;

use super::{anonymous_form, form_user, org, portal_page, Message};

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
) -> PageResult {
    let (org, email) = anonymous_form(
        &state,
        &slug,
        &form_token,
        &f.csrf,
        PortalMode::EmailLink,
        "This portal does not sign in by emailed link.",
        &f.email,
    )
    .await?;
    // The same answer whatever happens next, so the page tells nobody which addresses
    // may use the portal or were limited.
    let answer =
        "If this address can use the portal, a sign-in link is on its way. It works for 12 hours.";
    if !org.allows_sender(Some(&email)) {
        tracing::info!(org = %slug, "portal link refused: domain not on the whitelist");
    } else if !state.limits.allow_link(&email, client).await {
        tracing::warn!(org = %slug, client = %client, "portal link request rate limited");
    } else {
        let (desk, mail_org, base) = (state.desk.clone(), org.clone(), state.public_url.clone());
        crate::pages::after_answer("portal sign-in link not sent", async move {
            desk.mail_portal_link(mail_org, email, base).await
        });
    }
    Ok(portal_page(
        &state,
        &org,
        None,
        &form_token,
        Message {
            notice: Some(answer),
            ..Default::default()
        },
    )
    .await)
}

/// `/portal/link/TOKEN`: the emailed link opens the portal signed in.
pub async fn with_link(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    Ok(match state.desk.use_sign_in_link(token).await? {
        Ok(Principal::Portal { org, email }) => {
            let target = format!("/portal/{org}");
            session::sign_in(&state, Principal::Portal { org, email }, &target).await?
        }
        Ok(Principal::Staff { .. }) => {
            refuse(StatusCode::BAD_REQUEST, "This link is not for the portal.")
        }
        Err(why) => refuse(
            StatusCode::FORBIDDEN,
            crate::pages::signin::link_refusal(why),
        ),
    })
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
) -> PageResult {
    let org = org(&state, &slug).await?;
    if org.portal.mode != PortalMode::DirectoryToken {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "This portal does not take directory tokens.",
        )
        .into());
    }
    let secret = state
        .desk
        .directory_secret(slug.clone())
        .await?
        .ok_or_else(|| {
            refuse(
                StatusCode::FORBIDDEN,
                "This portal has no directory secret yet; its administrators must generate one.",
            )
        })?;
    let now = state.desk.now().unix_timestamp();
    let verified = crate::directory_token::verify(&q.token, &secret, &slug, now).map_err(|e| {
        tracing::info!(org = %slug, reason = ?e, "directory token refused");
        refuse(StatusCode::FORBIDDEN, e.message())
    })?;
    // Single use: a token seen in a log, a Referer or a browser history opens nothing.
    let first_use = state
        .desk
        .use_directory_token(slug.clone(), verified.jti.clone(), verified.expires)
        .await?;
    if !first_use {
        tracing::info!(org = %slug, "directory token used again");
        let e = crate::directory_token::TokenError::Replayed;
        return Err(refuse(StatusCode::FORBIDDEN, e.message()).into());
    }
    let target = format!("/portal/{slug}");
    let principal = Principal::Portal {
        org: slug,
        email: verified.email,
    };
    Ok(session::sign_in(&state, principal, &target).await?)
}

pub async fn sign_out(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    session: Option<PortalSession>,
    Form(f): Form<CsrfOnly>,
) -> PageResult {
    let me = form_user(session, &slug, &f.csrf)?;
    state.desk.end_session(me.id.clone()).await?;
    Ok(session::signed_out(&state, &format!("/portal/{slug}")))
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
) -> PageResult {
    let me = form_user(session, &slug, &f.csrf)?;
    state
        .desk
        .set_automatic_mail(me.email.clone(), f.on == "yes")
        .await?;
    Ok(Redirect::to(&format!("/portal/{slug}")).into_response())
}
