//! `GET /portal`: the list of support portals, for someone who knows the server but not
//! their organization's portal; with one organization, its portal at once.

use super::render;
use crate::refusals::PageResult;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};

struct PortalLink {
    slug: String,
    title: String,
}

#[derive(Template)]
#[template(path = "portals.html")]
struct PortalsPage {
    portals: Vec<PortalLink>,
}

pub async fn list(State(state): State<AppState>) -> PageResult {
    let orgs = state.desk.portals().await?;
    if let [only] = orgs.as_slice() {
        return Ok(Redirect::to(&format!("/portal/{}", only.slug)).into_response());
    }
    let portals = orgs
        .into_iter()
        .map(|o| PortalLink {
            title: if o.portal.page_title.is_empty() {
                format!("{} support", o.name)
            } else {
                o.portal.page_title
            },
            slug: o.slug,
        })
        .collect();
    Ok(render(&PortalsPage { portals }))
}
