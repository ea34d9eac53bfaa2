//! API authentication: `Authorization: Bearer TOKEN`, checked against hashed tokens.

use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use postdesk_desk::model::Staff;

/// The staff member a request acts as.
pub struct Caller(pub Staff);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let staff = state.desk.api_caller(token.to_string()).await?;
        staff.map(Caller).ok_or(ApiError::Unauthorized)
    }
}
