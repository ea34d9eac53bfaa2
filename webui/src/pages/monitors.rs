//! Settings → organization → Monitors & Alerts: the organization's monitors as a form of
//! rows (kind, hours, mail on or off), and auto-close. Owners and admins change them;
//! managers look.

use super::{after_change, render, Chrome};
use crate::forms::{csrf_form, SettingsForm};
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use postdesk_desk::audit::{AuditAction::SettingsChanged, Done};
use postdesk_desk::model::{Monitor, MonitorKind};
use postdesk_desk::{DeskError, DeskResult};
use serde::Deserialize;
use std::collections::HashMap;

/// Empty rows the form offers for new monitors.
const SPARE_ROWS: usize = 3;
/// The most rows a form may post: every monitor an organization may have, and the spares.
const MAX_ROWS: usize = postdesk_desk::model::MAX_MONITORS + SPARE_ROWS;

struct Row {
    kind: String,
    hours: String,
    email: bool,
}

struct KindChoice {
    value: &'static str,
    label: String,
}

#[derive(Template)]
#[template(path = "settings_monitors.html")]
struct MonitorsPage {
    chrome: Chrome,
    can_edit: bool,
    slug: String,
    rows: Vec<Row>,
    kinds: Vec<KindChoice>,
    /// Empty when auto-close is off.
    auto_close_days: String,
    notice: Option<String>,
    error: Option<String>,
}

async fn show_page(
    state: &AppState,
    me: &StaffSession,
    slug: &str,
    notice: Option<String>,
    error: Option<String>,
) -> PageResult {
    let set = state
        .desk
        .monitors(me.staff.clone(), slug.to_string())
        .await?;
    let failed = error.is_some();
    let mut rows: Vec<Row> = set
        .monitors
        .iter()
        .map(|m| Row {
            kind: m.kind.as_str().to_string(),
            hours: m.hours.map(|h| h.to_string()).unwrap_or_default(),
            email: m.email,
        })
        .collect();
    rows.extend((0..SPARE_ROWS).map(|_| Row {
        kind: String::new(),
        hours: String::new(),
        email: true,
    }));
    let mut page = render(&MonitorsPage {
        chrome: Chrome::of(me),
        can_edit: policy::can_edit_settings(&me.staff),
        slug: slug.to_string(),
        rows,
        kinds: MonitorKind::ALL
            .iter()
            .map(|k| KindChoice {
                value: k.as_str(),
                label: Monitor {
                    kind: *k,
                    hours: k.takes_hours().then_some(0),
                    email: true,
                }
                .describe()
                .replace(" 0 hours", " N hours"),
            })
            .collect(),
        auto_close_days: set
            .auto_close_days
            .map(|d| d.to_string())
            .unwrap_or_default(),
        notice,
        error,
    });
    if failed {
        *page.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(page)
}

pub async fn show(
    State(state): State<AppState>,
    me: StaffSession,
    Path(slug): Path<String>,
) -> PageResult {
    show_page(&state, &me, &slug, None, None).await
}

/// The form's rows: `kind_N`, `hours_N` and `email_N` (a checkbox) for N from 0.
#[derive(Deserialize)]
pub struct MonitorsForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: HashMap<String, String>,
}

csrf_form!(MonitorsForm);

/// The monitors the form lists (rows without a kind are left out) and its auto-close days
/// (empty: off).
fn parse(f: &MonitorsForm) -> DeskResult<(Vec<Monitor>, Option<u32>)> {
    let days = match f.fields.get("auto_close_days").map(|d| d.trim()) {
        None | Some("") => None,
        Some(d) => Some(
            d.parse::<u32>()
                .map_err(|_| DeskError::Invalid(format!("{d:?} is not a whole number of days.")))?,
        ),
    };
    let mut out = Vec::new();
    for i in 0..MAX_ROWS {
        let field = |name: &str| f.fields.get(&format!("{name}_{i}")).map(|v| v.trim());
        let Some(kind) = field("kind").filter(|k| !k.is_empty()) else {
            continue;
        };
        let kind: MonitorKind = kind.parse().map_err(DeskError::Invalid)?;
        let hours = match field("hours").filter(|h| !h.is_empty()) {
            Some(h) => Some(h.parse::<u32>().map_err(|_| {
                DeskError::Invalid(format!("{h:?} is not a whole number of hours."))
            })?),
            None => None,
        };
        out.push(Monitor {
            kind,
            hours: hours.filter(|_| kind.takes_hours()),
            email: field("email").is_some(),
        });
    }
    Ok((out, days))
}

/// `POST /settings/orgs/SLUG/monitors`: replaces the monitors with the form's rows.
pub async fn save(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    SettingsForm { me, form }: SettingsForm<MonitorsForm>,
) -> PageResult {
    let done = match parse(&form) {
        Ok((list, days)) => state
            .desk
            .set_monitors(me.staff.clone(), slug.clone(), list, Some(days))
            .await
            .map(|()| "Saved.".to_string()),
        Err(e) => Err(e),
    };
    if done.is_ok() {
        tracing::info!(org = %slug, by = %me.staff.email, "monitors changed");
        me.record(
            &state,
            Done::new(
                SettingsChanged,
                Some(&slug),
                "monitors and auto-close saved",
            ),
        )
        .await;
    }
    after_change(done, |notice, error| {
        show_page(&state, &me, &slug, notice, error)
    })
    .await
}
