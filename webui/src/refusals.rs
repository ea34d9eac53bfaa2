//! The short plain pages a refused request gets, and the type page handlers return so
//! that every refusal (desk, API, form) becomes one with `?`.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// A short plain error page for refusals (bad CSRF token, unknown ticket).
pub fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Html(format!(
        "<!DOCTYPE html><html><body><p role=\"alert\">{}</p><p><a href=\"/desk\">Back to the tickets</a></p></body></html>",
        escape(message)
    )))
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The answer to a post whose CSRF token is missing or wrong: nothing was done.
pub fn forged() -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "The form was stale or forged; nothing was done. Reload the page and try again.",
    )
}

/// What a page handler answers when it cannot do what was asked: the short error page with
/// the right status. Desk and API errors convert (see `error.rs`), so handlers use `?`.
pub struct Refusal(pub Response);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<Response> for Refusal {
    fn from(r: Response) -> Refusal {
        Refusal(r)
    }
}

/// What page handlers return.
pub type PageResult = Result<Response, Refusal>;
