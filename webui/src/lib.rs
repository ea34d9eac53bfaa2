//! HTTP: the JSON API (reads, and replies, notes and field changes for integrations) and
//! `/healthz`, every route asking the policy.

mod actions;
mod api;
mod auth;
mod error;
mod policy;

pub use error::ApiError;

use axum::routing::{get, post};
use axum::Router;
use postdesk_store::Store;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
}

/// The whole HTTP application.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/api/v1/tickets", get(api::list_tickets))
        .route(
            "/api/v1/tickets/{number}",
            get(api::show_ticket).patch(actions::update_fields),
        )
        .route("/api/v1/tickets/{number}/replies", post(actions::reply))
        .route("/api/v1/tickets/{number}/notes", post(actions::note))
        .route(
            "/api/v1/tickets/{number}/reply-address",
            get(api::reply_address),
        )
        .route("/api/v1/messages/{message_id}/raw", get(api::raw_message))
        .route("/api/v1/inbound", get(api::inbound_log))
        .route("/api/v1/outbox", get(api::outbox))
        .route("/api/v1/sources", get(api::sources))
        .fallback(api::not_found)
        .with_state(AppState { store })
}
