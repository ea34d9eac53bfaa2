//! API authentication: `Authorization: Bearer TOKEN`, checked against hashed tokens.

use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use postdesk_desk::audit::Done;
use postdesk_desk::model::Staff;

/// The staff member a request acts as.
pub struct Caller(pub Staff);

/// The API's caller with the client's address (through trusted proxies), for requests the
/// audit log records.
pub struct AuditedCaller {
    pub staff: Staff,
    pub from: String,
}

impl AuditedCaller {
    /// Records in the audit log that the caller did `done`.
    pub async fn record(&self, state: &AppState, done: Done) {
        crate::audit::record(state, self.staff.email.clone(), self.from.clone(), done).await;
    }
}

impl FromRequestParts<AppState> for AuditedCaller {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, axum::response::Response> {
        use axum::response::IntoResponse;
        let Caller(staff) = Caller::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let from = crate::client_ip::ClientIp::from_request_parts(parts, state)
            .await?
            .to_string();
        Ok(AuditedCaller { staff, from })
    }
}

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
