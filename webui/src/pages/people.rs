//! Settings: people. What owners and admins do with one person's data: download it (the
//! ZIP itself is `exports.rs`'s) or erase it, once the address is typed twice.

use super::{render, Chrome};
use crate::forms::{csrf_form, StaffForm};
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use postdesk_desk::model::Erased;
use postdesk_desk::people::{erasure_done, person_address};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "settings_people.html")]
struct PeoplePage {
    chrome: Chrome,
    can_handle: bool,
    /// What the last erasure did.
    erased: Option<Erased>,
    error: Option<String>,
}

fn page(me: &StaffSession, erased: Option<Erased>, error: Option<String>) -> Response {
    let failed = error.is_some();
    let mut r = render(&PeoplePage {
        chrome: Chrome::of(me),
        can_handle: policy::can_handle_personal_data(&me.staff),
        erased,
        error,
    });
    if failed {
        *r.status_mut() = StatusCode::BAD_REQUEST;
    }
    r
}

/// `GET /settings/people`.
pub async fn show(me: StaffSession) -> PageResult {
    Ok(page(&me, None, None))
}

#[derive(Deserialize)]
pub struct Erasure {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    /// The address typed again.
    #[serde(default)]
    confirm: String,
}

csrf_form!(Erasure);

/// `POST /settings/people/erase`: erases the address once it is typed twice alike.
pub async fn erase(
    State(state): State<AppState>,
    StaffForm { me, form: f }: StaffForm<Erasure>,
) -> PageResult {
    let (email, confirm) = (person_address(&f.email)?, person_address(&f.confirm)?);
    if email != confirm {
        let why = "Type the same address twice to confirm.".to_string();
        return Ok(page(&me, None, Some(why)));
    }
    let e = state.desk.erase_person(me.staff.clone(), email).await?;
    me.record(&state, erasure_done(&e)).await;
    Ok(page(&me, Some(e), None))
}
