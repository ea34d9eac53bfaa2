//! One-click unsubscribe (RFC 8058): `GET /unsubscribe/TOKEN` asks (a link opened in a
//! browser, or fetched by a mail scanner, must change nothing); `POST` does it, from the
//! page's button or straight from a mail client's one-click (`List-Unsubscribe=One-Click`,
//! no cookie, so no form token: the signed link is the authority).

use super::render;
use crate::refusals::PageResult;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};

#[derive(Template)]
#[template(path = "unsubscribe.html")]
struct UnsubscribePage {
    address: String,
    done: bool,
}

pub async fn ask(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let address = state.desk.unsubscribe_address(token).await?;
    Ok(render(&UnsubscribePage {
        address,
        done: false,
    }))
}

pub async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> PageResult {
    let address = state.desk.unsubscribe(token).await?;
    tracing::info!(%address, "unsubscribed from automatic mail");
    Ok(render(&UnsubscribePage {
        address,
        done: true,
    }))
}
