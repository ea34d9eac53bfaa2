//! The notification bell: opening an entry marks it read and goes to its ticket.

use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::AppState;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};

pub async fn open(
    State(state): State<AppState>,
    me: StaffSession,
    Path(event): Path<u64>,
) -> PageResult {
    let ticket = state.desk.open_bell_item(me.staff.clone(), event).await?;
    Ok(Redirect::to(&format!("/desk/tickets/{ticket}")).into_response())
}
