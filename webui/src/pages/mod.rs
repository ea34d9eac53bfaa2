//! Server-rendered pages (askama): staff sign-in, the ticket desk, the account page, and
//! the end-user portal.
//! Readable without JavaScript; every form posts with the session's CSRF token.

pub mod bell;
pub mod dashboard;
pub mod desk;
pub mod email;
pub mod monitors;
pub mod new_ticket;
pub mod people;
pub mod portal;
pub mod portals;
pub mod reports;
pub mod settings;
pub mod signin;
pub mod staff;
pub mod ticket;
pub mod unsubscribe;

pub use crate::refusals::refuse;
use crate::refusals::PageResult;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use postdesk_desk::{DeskError, DeskResult};

/// What every staff page's header needs.
pub struct Chrome {
    pub me_name: String,
    pub csrf: String,
    /// Whether the settings link shows (owners, admins, managers).
    pub settings: bool,
    /// Whether the reports link shows (owners, admins, managers).
    pub reports: bool,
    pub unread: usize,
    pub bell: Vec<postdesk_desk::model::BellItem>,
}

impl Chrome {
    pub fn of(me: &crate::session::StaffSession) -> Chrome {
        Chrome {
            me_name: me.staff.name.clone(),
            csrf: me.csrf.clone(),
            settings: crate::policy::can_view_settings(&me.staff),
            reports: crate::policy::can_see_reports(&me.staff),
            unread: me.unread,
            bell: me.bell.clone(),
        }
    }
}

/// One option of a select, and whether it is the current value.
pub struct Choice {
    pub value: String,
    pub selected: bool,
}

/// The options of a select from its values and the current one.
pub fn choices<'a>(
    values: impl IntoIterator<Item = &'a str>,
    current: &Option<String>,
) -> Vec<Choice> {
    values
        .into_iter()
        .map(|v| Choice {
            value: v.to_string(),
            selected: current.as_deref() == Some(v),
        })
        .collect()
}

/// Renders a page, or a plain 500 if the template fails.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A desk message ("the summary is empty") ended as a sentence on a page.
pub fn sentence(why: &str) -> String {
    if why.ends_with(['.', '!', '?']) {
        why.to_string()
    } else {
        format!("{why}.")
    }
}

/// Runs desk work after the answer is sent, logging a failure as `what`: for sign-in
/// links, whose cost (minted and mailed for known addresses only) must not show in how
/// long the page takes.
pub fn after_answer(
    what: &'static str,
    work: impl std::future::Future<Output = postdesk_desk::DeskResult<()>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(e) = work.await {
            tracing::error!(error = %e, "{what}");
        }
    });
}

/// A settings change's answer: `show(Some(notice), None)` when it was done; a refused
/// change (a bad field, a rule of the policy) shows on the page as `show(None, Some(why))`;
/// anything else is the error page.
pub async fn after_change<F, Shown>(done: DeskResult<String>, show: F) -> PageResult
where
    F: FnOnce(Option<String>, Option<String>) -> Shown,
    Shown: std::future::Future<Output = PageResult>,
{
    match done {
        Ok(notice) => show(Some(notice), None).await,
        Err(DeskError::Invalid(why) | DeskError::Conflict(why)) => show(None, Some(why)).await,
        Err(e) => Err(e.into()),
    }
}
