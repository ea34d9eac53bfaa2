//! Recording in the audit log from the edges, once what was asked is done. The change
//! stands whatever happens to its record: a record that cannot be written is logged as an
//! error instead of turning a done change into a failed answer.

use crate::AppState;
use postdesk_desk::audit::Done;

/// Records that `actor` did `done` from `from`.
pub(crate) async fn record(state: &AppState, actor: String, from: String, done: Done) {
    let detail = done.detail.clone();
    if let Err(e) = state.desk.record(actor.clone(), from, done).await {
        tracing::error!(error = %e, cause = e.cause().unwrap_or(""), %actor, %detail, "audit entry not written");
    }
}
