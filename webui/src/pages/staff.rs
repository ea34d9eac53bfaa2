//! Settings: employees. Owners and admins invite (a mail with a sign-in link to set a
//! password), change role and hourly rate, and delete, within the policy's rules.

use super::{blocking, choices, render, settings_forbidden, Choice, Chrome};
use crate::session::{StaffSession, INVITATION_HOURS};
use crate::{policy, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use postdesk_store::{Role, Staff, StoreError};
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

/// "12.50" from 1250 cents.
fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Cents from "12", "12.5" or "12.50"; `None` for anything else.
fn parse_money(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || whole.len() > 9
        || frac.len() > 2
        || !whole
            .chars()
            .chain(frac.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    Some(whole.parse::<u64>().ok()? * 100 + frac.parse::<u64>().ok()?)
}

async fn page(
    state: &AppState,
    me: &StaffSession,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let store = state.store.clone();
    let list = match blocking(move || store.staff_list()).await {
        Ok(l) => l,
        Err(r) => return r,
    };
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
        notice: notice.map(str::to_string),
        error: error.map(str::to_string),
    });
    if error.is_some() {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

pub async fn list(State(state): State<AppState>, me: StaffSession) -> Response {
    if !policy::can_view_settings(&me.staff) {
        return settings_forbidden();
    }
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
    me: StaffSession,
    Form(f): Form<Invite>,
) -> Response {
    if let Some(r) = super::settings_gate(&me, &f.csrf) {
        return r;
    }
    let email = postdesk_desk::address::email_address(&f.email).unwrap_or_default();
    let name = f.name.trim().to_string();
    let role = ROLES.iter().find(|(n, _)| *n == f.role).map(|(_, r)| *r);
    let problem = if email.is_empty() {
        Some("Give the employee's email address.")
    } else if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        Some("Give the employee's name (at most 100 characters).")
    } else if !matches!(role, Some(Role::Admin | Role::Manager | Role::Tech)) {
        Some("Choose admin, manager or tech (ownership is handed on, not given to newcomers).")
    } else if parse_money(&f.rate).is_none() {
        Some("The hourly rate is an amount like 45 or 45.50.")
    } else {
        None
    };
    if let Some(p) = problem {
        return page(&state, &me, None, Some(p)).await;
    }
    let staff = Staff {
        email: email.clone(),
        name: name.clone(),
        role: role.unwrap_or(Role::Tech),
        alerts: true,
        hourly_rate_cents: parse_money(&f.rate).unwrap_or(0),
        created_at: state.clock.now(),
    };
    let mailing = state.clone();
    let intro = format!(
        "{} invited you to the Postdesk staff desk as {}. Open the link, then set a password on your account page.",
        me.staff.name, staff.role
    );
    let added = blocking(move || match mailing.store.add_staff(&staff) {
        Ok(()) => {
            crate::links::mail_staff_link(&mailing, &staff.email, &intro, INVITATION_HOURS)?;
            Ok(true)
        }
        Err(StoreError::Exists(_)) => Ok(false),
        Err(e) => Err(e),
    })
    .await;
    match added {
        Ok(true) => {
            tracing::info!(email = %email, by = %me.staff.email, "employee invited");
            page(
                &state,
                &me,
                Some(&format!(
                    "Invited {name}; the invitation is on its way to {email}."
                )),
                None,
            )
            .await
        }
        Ok(false) => {
            page(
                &state,
                &me,
                None,
                Some("That address already belongs to an employee."),
            )
            .await
        }
        Err(r) => r,
    }
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

async fn target(state: &AppState, email: &str) -> Result<Option<Staff>, Response> {
    let store = state.store.clone();
    let email = email.to_string();
    blocking(move || store.staff(&email)).await
}

pub async fn update(
    State(state): State<AppState>,
    me: StaffSession,
    Form(f): Form<Update>,
) -> Response {
    if let Some(r) = super::settings_gate(&me, &f.csrf) {
        return r;
    }
    let Some(mut person) = (match target(&state, &f.email).await {
        Ok(t) => t,
        Err(r) => return r,
    }) else {
        return page(&state, &me, None, Some("No such employee.")).await;
    };
    let Some(role) = ROLES.iter().find(|(n, _)| *n == f.role).map(|(_, r)| *r) else {
        return page(&state, &me, None, Some("Choose a role.")).await;
    };
    let Some(rate) = parse_money(&f.rate) else {
        return page(
            &state,
            &me,
            None,
            Some("The hourly rate is an amount like 45 or 45.50."),
        )
        .await;
    };
    if let Some(why) = policy::staff_change_refused(&me.staff, &person, Some(role), false) {
        return page(&state, &me, None, Some(why)).await;
    }
    let store = state.store.clone();
    let (owner, handing_on) = (
        me.staff.email.clone(),
        role == Role::Owner && person.role != Role::Owner,
    );
    person.hourly_rate_cents = rate;
    if !handing_on {
        person.role = role;
    }
    let email = person.email.clone();
    let saved = blocking(move || {
        store.update_staff(&person)?;
        if handing_on {
            store.transfer_ownership(&owner, &person.email)?;
        }
        Ok(())
    })
    .await;
    if let Err(r) = saved {
        return r;
    }
    tracing::info!(email = %email, by = %me.staff.email, role = %role, "employee changed");
    page(&state, &me, Some(&format!("Saved {email}.")), None).await
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
    me: StaffSession,
    Form(f): Form<Delete>,
) -> Response {
    if let Some(r) = super::settings_gate(&me, &f.csrf) {
        return r;
    }
    let Some(person) = (match target(&state, &f.email).await {
        Ok(t) => t,
        Err(r) => return r,
    }) else {
        return page(&state, &me, None, Some("No such employee.")).await;
    };
    if let Some(why) = policy::staff_change_refused(&me.staff, &person, None, true) {
        return page(&state, &me, None, Some(why)).await;
    }
    let store = state.store.clone();
    let email = person.email.clone();
    if let Err(r) = blocking(move || store.remove_staff(&email)).await {
        return r;
    }
    tracing::info!(email = %person.email, by = %me.staff.email, "employee deleted");
    page(
        &state,
        &me,
        Some(&format!("Deleted {}.", person.email)),
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_round_trips() {
        assert_eq!(parse_money("45"), Some(4500));
        assert_eq!(parse_money("45.5"), Some(4550));
        assert_eq!(parse_money(" 0.07 "), Some(7));
        for bad in ["", "-1", "4.555", "1e3", "12,50", ".5"] {
            assert_eq!(parse_money(bad), None, "{bad}");
        }
        assert_eq!(money(4550), "45.50");
    }
}
