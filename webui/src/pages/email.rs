//! Settings: email. How mail leaves (the relay from the configuration, or the outbox
//! folder), the mailboxes read over IMAP and their state, each organization's sending
//! address, and its DKIM key: the TXT record to
//! publish, and for owners and admins a new key.

use super::desk::short_time;
use super::{after_change, render, Chrome};
use crate::forms::{csrf_form, SettingsForm};
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use postdesk_desk::audit::{AuditAction::SettingsChanged, Done};
use postdesk_desk::DeskError;
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
) -> PageResult {
    // The desk refuses those who may not see settings.
    let sources = state.desk.sources(me.staff.clone()).await?;
    let orgs = state.desk.orgs_with_keys(me.staff.clone()).await?;
    let sources = sources
        .into_iter()
        .map(|s| SourceView {
            state: match (s.status.connected, s.status.idle) {
                (true, true) => "connected, IDLE".into(),
                (true, false) => "connected, polling".into(),
                (false, _) => "not connected".into(),
            },
            imported: s.imported,
            refused: s.refused,
            last_success: s
                .status
                .last_success
                .map(short_time)
                .unwrap_or_else(|| "never".into()),
            last_error: match (s.status.last_error, s.status.last_error_at) {
                (Some(e), Some(at)) => format!("{} ({e})", short_time(at)),
                (Some(e), None) => e,
                _ => "none".into(),
            },
            source: s.status.source,
            org: s.status.org,
        })
        .collect();
    let year = time::OffsetDateTime::now_utc().year();
    let orgs = orgs
        .into_iter()
        .map(|(o, key)| {
            let address = o.addresses.first().cloned().unwrap_or_default();
            let domain = o.mail_domain().to_string();
            OrgMail {
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
            }
        })
        .collect();
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
    Ok(r)
}

pub async fn show(State(state): State<AppState>, me: StaffSession) -> PageResult {
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
    Path(slug): Path<String>,
    SettingsForm { me, form: f }: SettingsForm<NewKey>,
) -> PageResult {
    let done = async {
        let algorithm = match f.algorithm.as_str() {
            "rsa" => postdesk_notifier::Algorithm::Rsa,
            "ed25519" => postdesk_notifier::Algorithm::Ed25519,
            _ => return Err(DeskError::Invalid("Choose rsa or ed25519.".into())),
        };
        let key =
            postdesk_notifier::new_key_record(&slug, &f.selector, algorithm, state.desk.now())?;
        state.desk.set_dkim_key(me.staff.clone(), key).await?;
        tracing::info!(org = %slug, by = %me.staff.email, "DKIM key replaced");
        me.record(
            &state,
            Done::new(SettingsChanged, Some(&slug), "DKIM key replaced"),
        )
        .await;
        Ok(format!(
            "New DKIM key for {slug}: publish its record before mail is checked against it."
        ))
    };
    after_change(done.await, |notice, error| page(&state, &me, notice, error)).await
}

csrf_form!(NewKey);
