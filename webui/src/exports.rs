//! Downloads: the CSV exports, `GET /api/v1/exports/tickets.csv` and `time.csv` (API
//! token) and the same from the reports page (session), for owners, admins and managers;
//! and a person's data as a ZIP, `GET /api/v1/people/EMAIL/export` and from Settings ›
//! People, for owners and admins. The desk refuses anyone else before a byte is sent. The
//! body streams as the desk writes it; the audit log records each download.

use crate::auth::AuditedCaller;
use crate::forms::StaffForm;
use crate::refusals::PageResult;
use crate::session::StaffSession;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use postdesk_desk::audit::{AuditAction, Done};
use postdesk_desk::exports::{Chunks, ExportFilter};
use postdesk_desk::model::Staff;
use postdesk_desk::people::person_address;
use serde::Deserialize;

/// The list's filters, as query parameters.
#[derive(Deserialize, Default)]
pub struct ExportQuery {
    org: Option<String>,
    status: Option<String>,
    #[serde(rename = "type")]
    ticket_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl ExportQuery {
    /// What the audit log says of an export of `file` with these filters.
    fn done(&self, file: &str) -> Done {
        let given = [
            ("org", &self.org),
            ("status", &self.status),
            ("type", &self.ticket_type),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={v}"))
        })
        .collect::<Vec<_>>()
        .join(" ");
        let org = self.org.as_deref().filter(|o| !o.is_empty());
        Done::new(
            AuditAction::Exported,
            org,
            format!("{file} {given}").trim_end().to_string(),
        )
    }

    pub(crate) fn filter(&self) -> Result<ExportFilter, ApiError> {
        Ok(ExportFilter::parse(
            self.org.as_deref(),
            self.status.as_deref(),
            self.ticket_type.as_deref(),
            self.from.as_deref(),
            self.to.as_deref(),
        )?)
    }
}

const CSV: &str = "text/csv; charset=utf-8";

/// The download: the desk's chunks as they come. An export that fails halfway ends the
/// body with an error, so the client sees a cut-off transfer, not a short file.
fn download(name: &str, content_type: &str, chunks: Chunks) -> Response {
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let next = chunks.recv().await?.map_err(|e| {
            tracing::error!(error = %e, cause = e.cause().unwrap_or(""), "export cut off");
            std::io::Error::other(e.to_string())
        });
        Some((next, chunks))
    });
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The export a path names (`tickets.csv`, `time.csv`), for `staff`, with the query's
/// filters; the desk refuses those who may not export before anything is written.
async fn export(
    state: &AppState,
    staff: Staff,
    file: &str,
    q: &ExportQuery,
) -> Result<Chunks, ApiError> {
    let filter = q.filter()?;
    Ok(match file {
        "tickets.csv" => state.desk.tickets_csv(staff, filter).await?,
        "time.csv" => state.desk.time_csv(staff, filter).await?,
        _ => return Err(ApiError::NotFound(format!("There is no export {file:?}."))),
    })
}

/// `GET /api/v1/exports/{tickets,time}.csv`.
pub async fn api(
    State(state): State<AppState>,
    caller: AuditedCaller,
    Path(file): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let chunks = export(&state, caller.staff.clone(), &file, &q).await?;
    caller.record(&state, q.done(&file)).await;
    Ok(download(&file, CSV, chunks))
}

/// `GET /reports/{tickets,time}.csv`: the same from the reports page.
pub async fn page(
    State(state): State<AppState>,
    me: StaffSession,
    Path(file): Path<String>,
    Query(q): Query<ExportQuery>,
) -> PageResult {
    let chunks = export(&state, me.staff.clone(), &file, &q).await?;
    me.record(&state, q.done(&file)).await;
    Ok(download(&file, CSV, chunks))
}

/// The ZIP of everything held about `email`, and what the audit log says of it.
async fn person(state: &AppState, staff: Staff, email: &str) -> Result<(Response, Done), ApiError> {
    let address = person_address(email)?;
    let (chunks, done) = state.desk.person_export(staff, address.clone()).await?;
    let name = format!(
        "person-{}.zip",
        address.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "_")
    );
    Ok((download(&name, "application/zip", chunks), done))
}

/// `GET /api/v1/people/EMAIL/export`.
pub async fn person_api(
    State(state): State<AppState>,
    caller: AuditedCaller,
    Path(email): Path<String>,
) -> Result<Response, ApiError> {
    let (zip, done) = person(&state, caller.staff.clone(), &email).await?;
    caller.record(&state, done).await;
    Ok(zip)
}

#[derive(Deserialize)]
pub struct PersonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

crate::forms::csrf_form!(PersonForm);

/// `POST /settings/people/export`: the same from Settings › People (a form with the
/// session's token: another site cannot make a signed-in admin's browser ask for it, and
/// the address stays out of URLs and logs).
pub async fn person_page(
    State(state): State<AppState>,
    StaffForm { me, form }: StaffForm<PersonForm>,
) -> PageResult {
    let (zip, done) = person(&state, me.staff.clone(), &form.email).await?;
    me.record(&state, done).await;
    Ok(zip)
}
