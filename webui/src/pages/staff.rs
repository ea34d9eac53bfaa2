//! Settings: employees. Owners and admins invite (a mail with a sign-in link to set a
//! password), change role and hourly rate, and delete, within the policy's rules.

use super::{after_change, choices, render, Choice, Chrome};
use crate::forms::{csrf_form, SettingsForm};
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use postdesk_desk::access::INVITATION_HOURS;
use postdesk_desk::audit::{AuditAction::StaffChanged, Done};
use postdesk_desk::costs::{money, parse_money};
use postdesk_desk::employees::Invitation;
use postdesk_desk::model::Role;
use postdesk_desk::DeskError;
use serde::Deserialize;

struct Person {
    name: String,
    email: String,
    role: String,
    rate: String,
    roles: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "settings_staff.html")]
struct StaffPage {
    chrome: Chrome,
    can_edit: bool,
    people: Vec<Person>,
    notice: Option<String>,
    error: Option<String>,
}

const ROLES: [(&str, Role); 4] = [
    ("owner", Role::Owner),
    ("admin", Role::Admin),
    ("manager", Role::Manager),
    ("tech", Role::Tech),
];

async fn page(
    state: &AppState,
    me: &StaffSession,
    notice: Option<String>,
    error: Option<String>,
) -> PageResult {
    // The desk refuses those who may not see settings.
    let list = state.desk.staff_list(me.staff.clone()).await?;
    let failed = error.is_some();
    let mut r = render(&StaffPage {
        chrome: Chrome::of(me),
        can_edit: policy::can_edit_settings(&me.staff),
        people: list
            .into_iter()
            .map(|s| Person {
                roles: choices(ROLES.iter().map(|(n, _)| *n), &Some(s.role.to_string())),
                role: s.role.to_string(),
                rate: money(s.hourly_rate_cents),
                name: s.name,
                email: s.email,
            })
            .collect(),
        notice,
        error,
    });
    if failed {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(r)
}

pub async fn list(State(state): State<AppState>, me: StaffSession) -> PageResult {
    page(&state, &me, None, None).await
}

#[derive(Deserialize)]
pub struct Invite {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    rate: String,
}

pub async fn invite(
    State(state): State<AppState>,
    SettingsForm { me, form: f }: SettingsForm<Invite>,
) -> PageResult {
    let done = async {
        let rate = parse_money(&f.rate).ok_or_else(|| {
            DeskError::Invalid("The hourly rate is an amount like 45 or 45.50.".into())
        })?;
        let role = ROLES
            .iter()
            .find(|(n, _)| *n == f.role)
            .map(|(_, r)| *r)
            .filter(|r| *r != Role::Owner)
            .ok_or_else(|| {
                DeskError::Invalid(
                    "Choose admin, manager or tech (ownership is handed on, not given to newcomers)."
                        .into(),
                )
            })?;
        let invitation = Invitation {
            email: f.email,
            name: f.name,
            role,
            hourly_rate_cents: rate,
        };
        let new = state
            .desk
            .invite_employee(me.staff.clone(), invitation)
            .await?;
        let intro = format!(
            "{} invited you to the Postdesk staff desk as {}. Open the link, then set a password on your account page.",
            me.staff.name, new.role
        );
        state
            .desk
            .mail_staff_link(
                new.email.clone(),
                intro,
                INVITATION_HOURS,
                state.public_url.clone(),
            )
            .await?;
        tracing::info!(email = %new.email, by = %me.staff.email, "employee invited");
        let detail = format!("invited {} as {}", new.email, new.role);
        me.record(&state, Done::new(StaffChanged, None, detail))
            .await;
        Ok(format!(
            "Invited {}; the invitation is on its way to {}.",
            new.name, new.email
        ))
    };
    after_change(done.await, |notice, error| page(&state, &me, notice, error)).await
}

#[derive(Deserialize)]
pub struct Update {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    rate: String,
}

pub async fn update(
    State(state): State<AppState>,
    SettingsForm { me, form: f }: SettingsForm<Update>,
) -> PageResult {
    let done = async {
        let role = ROLES
            .iter()
            .find(|(n, _)| *n == f.role)
            .map(|(_, r)| *r)
            .ok_or_else(|| DeskError::Invalid("Choose a role.".into()))?;
        let rate = parse_money(&f.rate).ok_or_else(|| {
            DeskError::Invalid("The hourly rate is an amount like 45 or 45.50.".into())
        })?;
        let person = state
            .desk
            .change_employee(me.staff.clone(), f.email, role, rate)
            .await?;
        tracing::info!(email = %person.email, by = %me.staff.email, role = %role, "employee changed");
        let detail = format!(
            "{} is {} at {} an hour",
            person.email,
            role,
            money(person.hourly_rate_cents)
        );
        me.record(&state, Done::new(StaffChanged, None, detail))
            .await;
        Ok(format!("Saved {}.", person.email))
    };
    after_change(done.await, |notice, error| page(&state, &me, notice, error)).await
}

#[derive(Deserialize)]
pub struct Delete {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

pub async fn delete(
    State(state): State<AppState>,
    SettingsForm { me, form: f }: SettingsForm<Delete>,
) -> PageResult {
    let done = async {
        let person = state
            .desk
            .remove_employee(me.staff.clone(), f.email)
            .await?;
        tracing::info!(email = %person.email, by = %me.staff.email, "employee deleted");
        let detail = format!("removed {}", person.email);
        me.record(&state, Done::new(StaffChanged, None, detail))
            .await;
        Ok(format!("Deleted {}.", person.email))
    };
    after_change(done.await, |notice, error| page(&state, &me, notice, error)).await
}

csrf_form!(Invite, Update, Delete);
