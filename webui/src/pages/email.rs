//! Settings: email. How mail leaves (the relay from the configuration, or the outbox
//! folder), the mailboxes read over IMAP and their state, each organization's sending
//! address, and its DKIM key: the TXT record to
//! publish, and for owners and admins a new key.

use super::desk::short_time;
use super::{blocking, refuse, render, settings_forbidden, Chrome};
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use postdesk_store::{DkimKeyRecord, StoreError};
use serde::Deserialize;

struct OrgMail {
    slug: String,
    name: String,
    address: String,
    record: Option<String>,
    algorithm: String,
    selector: String,
    next_selector: String,
}

/// A mailbox source's status, as the importer last recorded it.
struct SourceView {
    source: String,
    org: String,
    state: String,
    imported: u64,
    refused: u64,
    last_success: String,
    last_error: String,
}

#[derive(Template)]
#[template(path = "settings_email.html")]
struct EmailPage {
    chrome: Chrome,
    can_edit: bool,
    outbound: String,
    sources: Vec<SourceView>,
    orgs: Vec<OrgMail>,
    notice: Option<String>,
    error: Option<String>,
}

async fn page(
    state: &AppState,
    me: &StaffSession,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let store = state.store.clone();
    let found = blocking(move || {
        let mut sources = Vec::new();
        for s in store.mailbox_statuses()? {
            let (imported, refused) = store.mailbox_counts(&s.source)?;
            sources.push(SourceView {
                state: match (s.connected, s.idle) {
                    (true, true) => "connected, IDLE".into(),
                    (true, false) => "connected, polling".into(),
                    (false, _) => "not connected".into(),
                },
                imported,
                refused,
                last_success: s
                    .last_success
                    .map(short_time)
                    .unwrap_or_else(|| "never".into()),
                last_error: match (s.last_error, s.last_error_at) {
                    (Some(e), Some(at)) => format!("{} ({e})", short_time(at)),
                    (Some(e), None) => e,
                    _ => "none".into(),
                },
                source: s.source,
                org: s.org,
            });
        }
        let mut out = Vec::new();
        for o in store.orgs()? {
            let key = store.dkim_key(&o.slug)?;
            let address = o.addresses.first().cloned().unwrap_or_default();
            let domain = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            let year = time::OffsetDateTime::now_utc().year();
            out.push(OrgMail {
                record: key
                    .as_ref()
                    .map(|k| postdesk_notifier::dns_record(k, &domain)),
                algorithm: key
                    .as_ref()
                    .map(|k| k.algorithm.clone())
                    .unwrap_or_default(),
                selector: key.as_ref().map(|k| k.selector.clone()).unwrap_or_default(),
                next_selector: format!("postdesk{year}"),
                slug: o.slug,
                name: o.name,
                address,
            });
        }
        Ok((sources, out))
    })
    .await;
    let (sources, orgs) = match found {
        Ok(o) => o,
        Err(r) => return r,
    };
    let failed = error.is_some();
    let mut r = render(&EmailPage {
        chrome: Chrome::of(me),
        can_edit: policy::can_edit_settings(&me.staff),
        outbound: state.outbound.clone(),
        sources,
        orgs,
        notice,
        error,
    });
    if failed {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

pub async fn show(State(state): State<AppState>, me: StaffSession) -> Response {
    if !policy::can_view_settings(&me.staff) {
        return settings_forbidden();
    }
    page(&state, &me, None, None).await
}

#[derive(Deserialize)]
pub struct NewKey {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    selector: String,
    #[serde(default)]
    algorithm: String,
}

pub async fn generate(
    State(state): State<AppState>,
    me: StaffSession,
    Path(slug): Path<String>,
    Form(f): Form<NewKey>,
) -> Response {
    if let Some(refused) = super::settings_gate(&me, &f.csrf) {
        return refused;
    }
    let selector = f.selector.trim().to_string();
    if selector.is_empty()
        || selector.len() > 63
        || !selector
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return page(
            &state,
            &me,
            None,
            Some("The selector is letters, digits, dashes and dots.".into()),
        )
        .await;
    }
    let algorithm = match f.algorithm.as_str() {
        "rsa" => postdesk_notifier::Algorithm::Rsa,
        "ed25519" => postdesk_notifier::Algorithm::Ed25519,
        _ => return page(&state, &me, None, Some("Choose rsa or ed25519.".into())).await,
    };
    let store = state.store.clone();
    let made = blocking(move || {
        if store.org(&slug)?.is_none() {
            return Ok(None);
        }
        let (algorithm, private_key, public_key) = postdesk_notifier::generate_key(algorithm)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        store.put_dkim_key(&DkimKeyRecord {
            org: slug.clone(),
            selector,
            algorithm,
            private_key,
            public_key,
            created_at: time::OffsetDateTime::now_utc(),
        })?;
        Ok(Some(slug))
    })
    .await;
    match made {
        Ok(Some(slug)) => {
            tracing::info!(org = %slug, by = %me.staff.email, "DKIM key replaced");
            page(&state, &me, Some(format!("New DKIM key for {slug}: publish its record before mail is checked against it.")), None).await
        }
        Ok(None) => refuse(StatusCode::NOT_FOUND, "No such organization."),
        Err(r) => r,
    }
}
