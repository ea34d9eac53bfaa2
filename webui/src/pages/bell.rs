//! The notification bell: opening an entry marks it read and goes to its ticket.

use super::{blocking, refuse};
use crate::session::StaffSession;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

pub async fn open(
    State(state): State<AppState>,
    me: StaffSession,
    Path(event): Path<u64>,
) -> Response {
    let store = state.store.clone();
    let email = me.staff.email.clone();
    match blocking(move || store.open_bell_item(&email, event)).await {
        Ok(Some(item)) => Redirect::to(&format!("/desk/tickets/{}", item.ticket)).into_response(),
        Ok(None) => refuse(StatusCode::NOT_FOUND, "No such notification."),
        Err(r) => r,
    }
}
