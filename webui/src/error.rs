//! API errors: JSON `{"error": "..."}` with the right status code.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API token; send Authorization: Bearer TOKEN")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// The request is understood but the thing's state does not allow it (decided already).
    #[error("{0}")]
    Conflict(String),
    /// Too much of this is running; try again shortly (503).
    #[error("{0}")]
    Busy(String),
    /// Something failed below the desk; the cause goes to the log only.
    #[error("internal error")]
    Failed(String),
}

/// The one mapping of the desk's refusals to HTTP (pages go through [`ApiError::into_page`]).
impl From<postdesk_desk::DeskError> for ApiError {
    fn from(e: postdesk_desk::DeskError) -> ApiError {
        use postdesk_desk::DeskError;
        match e {
            DeskError::NotFound(m) => ApiError::NotFound(m),
            DeskError::Forbidden(m) => ApiError::Forbidden(m),
            DeskError::Invalid(m) => ApiError::BadRequest(m),
            DeskError::Conflict(m) => ApiError::Conflict(m),
            DeskError::Busy(m) => ApiError::Busy(m),
            DeskError::Internal(cause) => ApiError::Failed(cause),
        }
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Failed(cause) => {
                tracing::error!(error = %cause, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The same error as a page (for forms that share the API's checks).
    pub(crate) fn into_page(self) -> Response {
        crate::refusals::refuse(self.status(), &self.to_string())
    }
}

impl From<ApiError> for crate::refusals::Refusal {
    fn from(e: ApiError) -> Self {
        crate::refusals::Refusal(e.into_page())
    }
}

impl From<postdesk_desk::DeskError> for crate::refusals::Refusal {
    fn from(e: postdesk_desk::DeskError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
