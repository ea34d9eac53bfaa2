//! Settings: people. What owners and admins do with one person's data: download it (the
//! ZIP itself is `exports.rs`'s).

use super::{render, Chrome};
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::{policy, AppState};
use askama::Template;
use axum::extract::State;

#[derive(Template)]
#[template(path = "settings_people.html")]
struct PeoplePage {
    chrome: Chrome,
    can_handle: bool,
}

/// `GET /settings/people`.
pub async fn show(State(_state): State<AppState>, me: StaffSession) -> PageResult {
    Ok(render(&PeoplePage {
        chrome: Chrome::of(&me),
        can_handle: policy::can_handle_personal_data(&me.staff),
    }))
}
