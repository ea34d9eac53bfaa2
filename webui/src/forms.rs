//! Form posts from signed-in staff, plain or with files: the session and the form's CSRF
//! token are checked before the handler runs.

use crate::refusals::forged;
use crate::session::StaffSession;
use crate::upload::Upload;
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// A form that carries the session's CSRF token.
pub trait HasCsrf {
    fn csrf(&self) -> &str;
}

/// Implements [`HasCsrf`] for form types with a `csrf` field.
macro_rules! csrf_form {
    ($($form:ty),*) => {$(
        impl $crate::forms::HasCsrf for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        }
    )*};
}
pub(crate) use csrf_form;

/// A form that carries nothing but its CSRF token (sign out, buttons that confirm).
#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

csrf_form!(CsrfOnly);

/// A staff member's form post whose token matched their session: handlers that take it
/// never see a stale or forged form.
pub struct StaffForm<T> {
    pub me: StaffSession,
    pub form: T,
}

impl<T: DeserializeOwned + HasCsrf + Send> FromRequest<AppState> for StaffForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let me = StaffSession::from_request_parts(&mut parts, state).await?;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !me.csrf_ok(form.csrf()) {
            return Err(forged());
        }
        Ok(StaffForm { me, form })
    }
}

/// A settings change: a staff member's form whose token matched, from someone the policy
/// lets change settings (owners and admins); the desk asks the policy again.
pub struct SettingsForm<T> {
    pub me: StaffSession,
    pub form: T,
}

impl<T: DeserializeOwned + HasCsrf + Send> FromRequest<AppState> for SettingsForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let StaffForm { me, form } = StaffForm::<T>::from_request(req, state).await?;
        crate::policy::require_settings_edit(&me.staff)
            .map_err(|e| crate::refusals::Refusal::from(e).0)?;
        Ok(SettingsForm { me, form })
    }
}

/// A staff member's form with files (multipart) whose token matched their session. A form
/// that cannot be read (too big, cut off) is kept as the reason, for the page to show.
pub struct StaffUpload {
    pub me: StaffSession,
    pub upload: Result<Upload, String>,
}

impl FromRequest<AppState> for StaffUpload {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let me = StaffSession::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let multipart = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        // The same form without files may come urlencoded (a client without file inputs).
        let upload = if multipart {
            let multipart = Multipart::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            Upload::read(multipart, postdesk_desk::files::MAX_FILES).await
        } else {
            let Form(fields) = Form::<HashMap<String, String>>::from_request(request, state)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(Upload::from_fields(fields))
        };
        // An unreadable form changes nothing (the handler shows why); a readable one
        // must carry the session's token.
        if let Ok(u) = &upload {
            if !me.csrf_ok(&u.field("csrf")) {
                return Err(forged());
            }
        }
        Ok(StaffUpload { me, upload })
    }
}
