//! HTTP: the server-rendered staff desk, settings and end-user portal, the JSON API
//! (reads, and replies, notes and field changes for integrations) and `/healthz`; every
//! route asks the policy.

mod actions;
mod api;
mod audit;
mod auth;
mod client_ip;
mod directory_token;
mod error;
mod exports;
mod forms;
mod limits;
mod pages;
mod passwords;
mod refusals;
mod session;
mod upload;

use postdesk_desk::policy;

pub use client_ip::Networks;
pub use error::ApiError;
pub use limits::Limits;
pub use passwords::hash_password;

use axum::extract::State;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Every command and query goes through the desk (its clock stamps and expires
    /// everything, so tests can move time).
    pub desk: postdesk_desk::Desk,
    /// Cookies get `Secure` and the `__Host-` prefix (the site is served over HTTPS).
    pub secure_cookies: bool,
    /// The web UI's base URL, for links in mail.
    pub public_url: String,
    pub limits: Arc<limits::Limits>,
    /// Whose X-Forwarded-For / Forwarded headers name the client (see `ClientIp`).
    pub trusted_proxies: Arc<Networks>,
    /// Who may read `/metrics` (as `ClientIp` sees them).
    pub metrics_allow: Arc<Networks>,
    /// Where passwords are hashed and checked, a few at a time.
    pub passwords: Arc<passwords::Passwords>,
    /// How outbound mail leaves, for the email settings page (no secrets).
    pub outbound: String,
    /// The mail domain: a new organization's address is `slug@domain`.
    pub domain: String,
    /// Permits to read a large body (files), see `large`.
    pub large_bodies: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(desk: postdesk_desk::Desk, public_url: &str) -> AppState {
        AppState {
            desk,
            secure_cookies: public_url.starts_with("https://"),
            public_url: public_url.trim_end_matches('/').to_string(),
            limits: Arc::default(),
            trusted_proxies: Arc::default(),
            metrics_allow: Arc::default(),
            passwords: Arc::default(),
            outbound: String::new(),
            domain: "localhost".into(),
            large_bodies: Arc::new(tokio::sync::Semaphore::new(LARGE_AT_ONCE)),
        }
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(pages::dashboard::show))
        .route("/notifications/{event}", get(pages::bell::open))
        .route(
            "/signin",
            get(pages::signin::form).post(pages::signin::with_password),
        )
        .route("/signin/link/{token}", get(pages::signin::with_link))
        .route("/signin/email", post(pages::signin::email_link))
        .route("/signout", post(pages::signin::sign_out))
        .route(
            "/signout/everywhere",
            post(pages::signin::sign_out_everywhere),
        )
        .route("/account", get(pages::signin::account))
        .route("/account/password", post(pages::signin::set_password))
        .route("/account/alerts", post(pages::signin::set_alerts))
        .route("/portal", get(pages::portals::list))
        .route("/portal/link/{token}", get(pages::portal::with_link))
        .route("/portal/{slug}", get(pages::portal::home))
        .route("/portal/{slug}/link", post(pages::portal::request_link))
        .route(
            "/portal/{slug}/tickets",
            large(&state, post(pages::portal::submit), upload::MAX_UPLOAD_BODY),
        )
        .route("/portal/{slug}/guest", post(pages::portal::submit_as_guest))
        .route("/portal/{slug}/sso", get(pages::portal::directory_sign_in))
        .route(
            "/portal/{slug}/tickets/{number}",
            get(pages::portal::show).merge(large(
                &state,
                post(pages::portal::reply),
                upload::MAX_UPLOAD_BODY,
            )),
        )
        .route("/portal/{slug}/signout", post(pages::portal::sign_out))
        .route("/portal/{slug}/mail", post(pages::portal::set_mail))
        .route(
            "/settings/staff",
            get(pages::staff::list).post(pages::staff::invite),
        )
        .route("/settings/staff/update", post(pages::staff::update))
        .route("/settings/staff/delete", post(pages::staff::delete))
        .route("/settings/email", get(pages::email::show))
        .route("/settings/email/{slug}/dkim", post(pages::email::generate))
        .route(
            "/settings/orgs",
            get(pages::settings::orgs).post(pages::settings::add_org),
        )
        .route(
            "/settings/orgs/{slug}",
            get(pages::settings::org).post(pages::settings::save_org),
        )
        .route(
            "/settings/orgs/{slug}/monitors",
            get(pages::monitors::show).post(pages::monitors::save),
        )
        .route(
            "/settings/orgs/{slug}/unblock",
            post(pages::settings::unblock),
        )
        .route(
            "/settings/orgs/{slug}/deactivate",
            post(pages::settings::deactivate),
        )
        .route(
            "/settings/orgs/{slug}/reactivate",
            post(pages::settings::reactivate),
        )
        .route(
            "/settings/orgs/{slug}/directory-secret",
            post(pages::settings::new_directory_secret),
        )
        .route("/desk", get(pages::desk::list))
        .route(
            "/desk/tickets/{number}",
            get(pages::ticket::show).post(pages::ticket::answer).layer(
                axum::extract::DefaultBodyLimit::max(upload::MAX_UPLOAD_BODY),
            ),
        )
        .route(
            "/desk/new",
            get(pages::new_ticket::form)
                .post(pages::new_ticket::open)
                .layer(axum::extract::DefaultBodyLimit::max(
                    upload::MAX_UPLOAD_BODY,
                )),
        )
        .route("/desk/tickets/{number}/fields", post(pages::ticket::fields))
        .route("/desk/tickets/{number}/time", post(pages::ticket::log_time))
        .route("/desk/tickets/{number}/follow", post(pages::ticket::follow))
        .route("/desk/tickets/{number}/delete", post(pages::ticket::delete))
        .route(
            "/desk/tickets/{number}/held/{seq}/{decision}",
            post(pages::ticket::held),
        )
        .route(
            "/desk/tickets/{number}/original/{seq}",
            get(pages::ticket::original),
        )
        .route(
            "/desk/tickets/{number}/attachments/{sha256}",
            get(pages::ticket::attachment),
        )
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route(
            "/api/v1/tickets",
            get(api::list_tickets)
                .post(actions::open_ticket)
                .layer(axum::extract::DefaultBodyLimit::max(actions::MAX_JSON_BODY)),
        )
        .route(
            "/api/v1/tickets/{number}",
            get(api::show_ticket)
                .patch(actions::update_fields)
                .delete(actions::delete_ticket),
        )
        .route("/api/v1/exports/{file}", get(exports::api))
        .route("/api/v1/people/{email}/export", get(exports::person_api))
        .route("/api/v1/people/{email}/erase", post(actions::erase_person))
        .route("/settings/people", get(pages::people::show))
        .route("/settings/people/erase", post(pages::people::erase))
        .route("/settings/people/export", post(exports::person_page))
        .route(
            "/unsubscribe/{token}",
            get(pages::unsubscribe::ask).post(pages::unsubscribe::confirm),
        )
        .route("/reports", get(pages::reports::show))
        .route("/reports/{file}", get(exports::page))
        .route("/api/v1/orgs/{slug}/blocked", get(api::blocked_senders))
        .route(
            "/api/v1/orgs/{slug}/monitors",
            get(api::monitors).put(actions::set_monitors),
        )
        .route(
            "/api/v1/orgs/{slug}/deactivate",
            post(actions::deactivate_org),
        )
        .route(
            "/api/v1/orgs/{slug}/reactivate",
            post(actions::reactivate_org),
        )
        .route(
            "/api/v1/orgs/{slug}/blocked/{sender}",
            axum::routing::delete(actions::unblock_sender),
        )
        .route(
            "/api/v1/tickets/{number}/replies",
            post(actions::reply)
                .layer(axum::extract::DefaultBodyLimit::max(actions::MAX_JSON_BODY)),
        )
        .route(
            "/api/v1/tickets/{number}/notes",
            large(&state, post(actions::note), actions::MAX_JSON_BODY),
        )
        .route(
            "/api/v1/tickets/{number}/reply-address",
            get(api::reply_address),
        )
        .route(
            "/api/v1/tickets/{number}/events/{seq}/raw",
            get(api::event_original),
        )
        .route(
            "/api/v1/tickets/{number}/held/{seq}/accept",
            post(actions::accept_held),
        )
        .route(
            "/api/v1/tickets/{number}/held/{seq}/ticket",
            post(actions::open_held),
        )
        .route("/api/v1/messages/{message_id}/raw", get(api::raw_message))
        .route("/api/v1/inbound", get(api::inbound_log))
        .route("/api/v1/outbox", get(api::outbox))
        .route("/api/v1/sources", get(api::sources))
        .route("/api/v1/audit", get(api::audit))
        .fallback(api::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(count_request))
        .with_state(state)
}

/// Counts each request for `/metrics` under its route's pattern (the path itself holds
/// values a stranger picks) and a method from a fixed list, so labels stay few.
async fn count_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    postdesk_desk::metrics::metrics().http_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// A route whose body may carry files: up to `limit` bytes, and only a few such requests
/// at once (the rest wait before their body is read), so N senders of large bodies cost
/// at most `LARGE_AT_ONCE` bodies of memory.
fn large(
    state: &AppState,
    route: axum::routing::MethodRouter<AppState>,
    limit: usize,
) -> axum::routing::MethodRouter<AppState> {
    route
        .layer::<_, std::convert::Infallible>(axum::middleware::from_fn_with_state(
            state.clone(),
            one_of_few_large,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
}

/// How many requests with large bodies are read at once.
pub const LARGE_AT_ONCE: usize = 4;

async fn one_of_few_large(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // The semaphore is never closed, so acquiring only waits.
    let _permit = state.large_bodies.acquire().await.ok();
    next.run(request).await
}

/// Headers on every answer: pages run no script at all and load nothing from elsewhere
/// (mail content is hostile), cannot be framed, send no Referer (sign-in links carry
/// their token in the path), and are never stored by a browser or a proxy cache (pages,
/// API answers and downloads show tickets; a shared computer's cache must not).
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
