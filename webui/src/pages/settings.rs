//! Settings: organizations (addresses, whitelist, categories, portal texts and sign-in
//! mode, the directory-token secret). Owners and admins change them; managers look.

use super::{choices, render, Choice, Chrome};
use crate::forms::{csrf_form, CsrfOnly, SettingsForm, StaffForm};
use crate::refusals::{PageResult, Refusal};
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use postdesk_desk::audit::{AuditAction::SettingsChanged, Done};
use postdesk_desk::model::{FieldMode, Org, PortalMode, Retention};
use postdesk_desk::organizations::{org_address, org_name, whitelist_domain};
use postdesk_desk::DeskError;
use serde::Deserialize;

struct OrgRow {
    slug: String,
    name: String,
    addresses: String,
    mode: &'static str,
    /// The day a deactivated organization's data goes.
    deleted_on: Option<time::Date>,
}

#[derive(Template)]
#[template(path = "settings_orgs.html")]
struct OrgsPage {
    chrome: Chrome,
    orgs: Vec<OrgRow>,
    can_edit: bool,
    domain: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "settings_org.html")]
struct OrgPage {
    chrome: Chrome,
    can_edit: bool,
    slug: String,
    name: String,
    first_address: String,
    extra_addresses: String,
    whitelist: String,
    categories: String,
    category_modes: Vec<Choice>,
    portal_modes: Vec<Choice>,
    page_title: String,
    form_title: String,
    form_message: String,
    success_title: String,
    displayed_email: String,
    privacy_notice: String,
    /// Empty when kept for good.
    originals_days: String,
    closed_months: String,
    has_secret: bool,
    new_secret: Option<String>,
    /// Senders refused since a ticket of theirs was deleted as spam.
    blocked: Vec<postdesk_desk::model::BlockedSender>,
    /// When it was deactivated and the day its data goes, if it is deactivated.
    deactivated: Option<(time::Date, time::Date)>,
    can_deactivate: bool,
    notice: Option<String>,
    error: Option<String>,
}

const PORTAL_MODES: [(&str, PortalMode); 3] = [
    ("email_link", PortalMode::EmailLink),
    ("guest", PortalMode::Guest),
    ("directory_token", PortalMode::DirectoryToken),
];
const FIELD_MODES: [(&str, FieldMode); 3] = [
    ("hidden", FieldMode::Hidden),
    ("optional", FieldMode::Optional),
    ("required", FieldMode::Required),
];

fn mode_name(m: PortalMode) -> &'static str {
    PORTAL_MODES
        .iter()
        .find(|(_, v)| *v == m)
        .map_or("email_link", |(n, _)| n)
}

pub async fn orgs(State(state): State<AppState>, me: StaffSession) -> PageResult {
    orgs_page(&state, &me, None).await
}

/// The organizations (the desk refuses those who may not see settings).
async fn orgs_page(state: &AppState, me: &StaffSession, error: Option<String>) -> PageResult {
    let orgs = state.desk.orgs(me.staff.clone()).await?;
    let failed = error.is_some();
    let mut r = render(&OrgsPage {
        chrome: Chrome::of(me),
        orgs: orgs
            .into_iter()
            .map(|o| OrgRow {
                addresses: o.addresses.join(", "),
                mode: mode_name(o.portal.mode),
                deleted_on: o.deleted_on().map(|d| d.date()),
                slug: o.slug,
                name: o.name,
            })
            .collect(),
        can_edit: policy::can_edit_settings(&me.staff),
        domain: state.domain.clone(),
        error,
    });
    if failed {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

#[derive(Deserialize)]
pub struct NewOrg {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
}

/// Adds an organization at `slug@domain`, then opens its settings.
pub async fn add_org(
    State(state): State<AppState>,
    SettingsForm { me, form: f }: SettingsForm<NewOrg>,
) -> PageResult {
    let added = state
        .desk
        .add_org(me.staff.clone(), f.slug, f.name, state.domain.clone())
        .await;
    match added {
        Ok(org) => {
            tracing::info!(org = %org.slug, by = %me.staff.email, "organization added");
            me.record(
                &state,
                Done::new(SettingsChanged, Some(&org.slug), "organization added"),
            )
            .await;
            Ok(Redirect::to(&format!("/settings/orgs/{}", org.slug)).into_response())
        }
        Err(DeskError::Invalid(why) | DeskError::Conflict(why)) => {
            orgs_page(&state, &me, Some(why)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Default)]
struct Outcome<'a> {
    new_secret: Option<String>,
    notice: Option<&'a str>,
    error: Option<String>,
}

impl<'a> Outcome<'a> {
    fn notice(notice: &'a str) -> Outcome<'a> {
        Outcome {
            notice: Some(notice),
            ..Default::default()
        }
    }

    fn error(error: String) -> Outcome<'a> {
        Outcome {
            error: Some(error),
            ..Default::default()
        }
    }
}

async fn org_page(
    state: &AppState,
    me: &StaffSession,
    (org, has_secret): &(Org, bool),
    o: Outcome<'_>,
) -> PageResult {
    let has_secret = *has_secret;
    let blocked = state
        .desk
        .blocked_senders(me.staff.clone(), org.slug.clone())
        .await?;
    let p = &org.portal;
    let failed = o.error.is_some();
    let mut page = render(&OrgPage {
        chrome: Chrome::of(me),
        can_edit: policy::can_edit_settings(&me.staff),
        slug: org.slug.clone(),
        name: org.name.clone(),
        first_address: org.addresses.first().cloned().unwrap_or_default(),
        extra_addresses: org
            .addresses
            .iter()
            .skip(1)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        whitelist: org.whitelist.join("\n"),
        categories: p.categories.join("\n"),
        category_modes: choices(
            FIELD_MODES.iter().map(|(n, _)| *n),
            &FIELD_MODES
                .iter()
                .find(|(_, v)| *v == p.category_field)
                .map(|(n, _)| n.to_string()),
        ),
        portal_modes: choices(
            PORTAL_MODES.iter().map(|(n, _)| *n),
            &Some(mode_name(p.mode).to_string()),
        ),
        page_title: p.page_title.clone(),
        form_title: p.form_title.clone(),
        form_message: p.form_message.clone(),
        success_title: p.success_title.clone(),
        displayed_email: p.displayed_email.clone(),
        privacy_notice: p.privacy_notice.clone(),
        originals_days: org
            .retention
            .originals_days
            .map(|d| d.to_string())
            .unwrap_or_default(),
        closed_months: org
            .retention
            .closed_months
            .map(|m| m.to_string())
            .unwrap_or_default(),
        has_secret,
        new_secret: o.new_secret,
        blocked,
        deactivated: org
            .deactivated_at
            .zip(org.deleted_on())
            .map(|(a, b)| (a.date(), b.date())),
        can_deactivate: policy::can_deactivate_orgs(&me.staff),
        notice: o.notice.map(str::to_string),
        error: o.error,
    });
    if failed {
        *page.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(page)
}

/// Organization `slug` and whether it has a directory secret (the desk refuses those who
/// may not see settings).
async fn load_org(state: &AppState, me: &StaffSession, slug: &str) -> Result<(Org, bool), Refusal> {
    Ok(state
        .desk
        .org_settings(me.staff.clone(), slug.to_string())
        .await?)
}

pub async fn org(
    State(state): State<AppState>,
    me: StaffSession,
    Path(slug): Path<String>,
) -> PageResult {
    let org = load_org(&state, &me, &slug).await?;
    org_page(&state, &me, &org, Outcome::default()).await
}

#[derive(Deserialize)]
pub struct OrgForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    extra_addresses: String,
    #[serde(default)]
    whitelist: String,
    #[serde(default)]
    categories: String,
    #[serde(default)]
    category_field: String,
    #[serde(default)]
    portal_mode: String,
    #[serde(default)]
    page_title: String,
    #[serde(default)]
    form_title: String,
    #[serde(default)]
    form_message: String,
    #[serde(default)]
    success_title: String,
    #[serde(default)]
    displayed_email: String,
    #[serde(default)]
    privacy_notice: String,
    /// Absent (an older form): unchanged; empty: kept for good.
    originals_days: Option<String>,
    closed_months: Option<String>,
}

fn lines(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in text
        .lines()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if !out.iter().any(|o| o == l) {
            out.push(l.to_string());
        }
    }
    out
}

/// The organization as the form would leave it, or what is wrong with the form.
fn apply(org: &Org, f: &OrgForm) -> Result<Org, String> {
    let name = org_name(&f.name).map_err(|e| e.to_string())?;
    let mut addresses = vec![org.addresses.first().cloned().unwrap_or_default()];
    for a in lines(&f.extra_addresses) {
        let a = org_address(&a).map_err(|e| e.to_string())?;
        if !addresses.contains(&a) {
            addresses.push(a);
        }
    }
    let whitelist = lines(&f.whitelist)
        .iter()
        .map(|d| whitelist_domain(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let categories = lines(&f.categories);
    if categories.iter().any(|c| c.chars().count() > 100) {
        return Err("A category may have at most 100 characters.".into());
    }
    let category_field = FIELD_MODES
        .iter()
        .find(|(n, _)| *n == f.category_field)
        .map(|(_, v)| *v)
        .ok_or("Choose how the category field shows.")?;
    if category_field != FieldMode::Hidden && categories.is_empty() {
        return Err("A category field that shows needs categories.".into());
    }
    let mode = PORTAL_MODES
        .iter()
        .find(|(n, _)| *n == f.portal_mode)
        .map(|(_, v)| *v)
        .ok_or("Choose how portal users sign in.")?;
    let displayed_email = match f.displayed_email.trim() {
        "" => String::new(),
        given => postdesk_desk::address::email_address(given)
            .ok_or_else(|| format!("{given:?} is not an email address."))?,
    };
    let text = |t: &str, max: usize| -> Result<String, String> {
        let t = t.trim();
        if t.chars().count() > max {
            Err(format!("A portal text may have at most {max} characters."))
        } else {
            Ok(t.to_string())
        }
    };
    let mut out = org.clone();
    out.name = name;
    out.addresses = addresses;
    out.whitelist = whitelist;
    out.portal.categories = categories;
    out.portal.category_field = category_field;
    out.portal.mode = mode;
    out.portal.page_title = text(&f.page_title, 200)?;
    out.portal.form_title = text(&f.form_title, 200)?;
    out.portal.form_message = text(&f.form_message, 2000)?;
    out.portal.success_title = text(&f.success_title, 200)?;
    out.portal.displayed_email = displayed_email;
    // Counted as a browser counts it (a line break is one character), without control
    // characters other than line breaks and tabs.
    let notice: String = f
        .privacy_notice
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect();
    out.portal.privacy_notice = text(&notice, 4000)?;
    // A field the form did not send leaves the setting as it was.
    let number =
        |v: &Option<String>, was: Option<u32>, what: &str| -> Result<Option<u32>, String> {
            match v.as_deref().map(str::trim) {
                None => Ok(was),
                Some("") => Ok(None),
                Some(n) => n
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| format!("{what} must be a whole number (or empty to keep it).")),
            }
        };
    out.retention = Retention {
        originals_days: number(
            &f.originals_days,
            org.retention.originals_days,
            "Days to keep originals",
        )?,
        closed_months: number(
            &f.closed_months,
            org.retention.closed_months,
            "Months to keep closed tickets",
        )?,
    };
    out.retention.check()?;
    Ok(out)
}

/// What the audit log says of a settings save: the retention change, if any, spelled out
/// (a shorter retention deletes data at the next run).
fn saved_detail(was: &Retention, now: &Retention) -> String {
    let kept = |v: Option<u32>| v.map_or("kept".to_string(), |n| n.to_string());
    if was == now {
        return "settings saved".into();
    }
    format!(
        "settings saved; retention: originals days {} -> {}, closed ticket months {} -> {}",
        kept(was.originals_days),
        kept(now.originals_days),
        kept(was.closed_months),
        kept(now.closed_months)
    )
}

pub async fn save_org(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    SettingsForm { me, form: f }: SettingsForm<OrgForm>,
) -> PageResult {
    let org = load_org(&state, &me, &slug).await?;
    let updated = match apply(&org.0, &f) {
        Ok(u) => u,
        Err(e) => return org_page(&state, &me, &org, Outcome::error(e)).await,
    };
    match state.desk.save_org(me.staff.clone(), updated.clone()).await {
        Ok(()) => {
            tracing::info!(org = %slug, by = %me.staff.email, "organization settings changed");
            let detail = saved_detail(&org.0.retention, &updated.retention);
            me.record(&state, Done::new(SettingsChanged, Some(&slug), detail))
                .await;
            let saved = (updated, org.1);
            org_page(&state, &me, &saved, Outcome::notice("Saved.")).await
        }
        Err(DeskError::Invalid(why) | DeskError::Conflict(why)) => {
            org_page(&state, &me, &org, Outcome::error(why)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Generates a new directory-token secret, shows it once, and replaces the old one.
pub async fn new_directory_secret(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    SettingsForm { me, .. }: SettingsForm<CsrfOnly>,
) -> PageResult {
    let org = load_org(&state, &me, &slug).await?;
    let secret = state
        .desk
        .new_directory_secret(me.staff.clone(), slug.clone())
        .await?;
    let org = (org.0, true);
    tracing::info!(org = %slug, by = %me.staff.email, "directory token secret replaced");
    let replaced = Done::new(
        SettingsChanged,
        Some(&slug),
        "directory token secret replaced",
    );
    me.record(&state, replaced).await;
    org_page(
        &state,
        &me,
        &org,
        Outcome {
            new_secret: Some(secret),
            ..Default::default()
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct Unblock {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    sender: String,
}

#[derive(Deserialize)]
pub struct Deactivation {
    #[serde(default)]
    csrf: String,
    /// The organization's slug, typed again.
    #[serde(default)]
    confirm: String,
}

csrf_form!(Unblock, NewOrg, OrgForm, Deactivation);

/// `POST /settings/orgs/SLUG/deactivate`: the owner deactivates the organization, once its
/// slug is typed again to confirm.
pub async fn deactivate(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    StaffForm { me, form: f }: StaffForm<Deactivation>,
) -> PageResult {
    if f.confirm.trim() != slug {
        let org = load_org(&state, &me, &slug).await?;
        let why = format!("Type {slug} to confirm the deactivation.");
        return org_page(&state, &me, &org, Outcome::error(why)).await;
    }
    set_deactivated(&state, &me, &slug, true).await
}

/// `POST /settings/orgs/SLUG/reactivate`: the owner takes a deactivated organization back.
pub async fn reactivate(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    StaffForm { me, .. }: StaffForm<CsrfOnly>,
) -> PageResult {
    set_deactivated(&state, &me, &slug, false).await
}

async fn set_deactivated(
    state: &AppState,
    me: &StaffSession,
    slug: &str,
    deactivate: bool,
) -> PageResult {
    let org = state
        .desk
        .set_org_deactivated(me.staff.clone(), slug.to_string(), deactivate)
        .await?;
    me.record(state, Done::status_changed(&org)).await;
    Ok(Redirect::to(&format!("/settings/orgs/{slug}")).into_response())
}

/// `POST /settings/orgs/SLUG/unblock`: a sender blocked as spam may write again.
pub async fn unblock(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    StaffForm { me, form: f }: StaffForm<Unblock>,
) -> PageResult {
    state
        .desk
        .unblock_sender(me.staff.clone(), slug.clone(), f.sender.clone())
        .await?;
    let detail = format!("unblocked {}", f.sender);
    me.record(&state, Done::new(SettingsChanged, Some(&slug), detail))
        .await;
    Ok(Redirect::to(&format!("/settings/orgs/{slug}")).into_response())
}
