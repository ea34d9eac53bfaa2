//! Mailbox sources: one task per configured IMAP mailbox imports its mail into the same
//! spool and pipeline as SMTP mail, exactly once, and marks or moves it only after that.

mod config;
mod connect;
mod folders;
mod import;
mod namespace;
mod source;

pub use config::{AfterImport, ImapSourceConfig, ImapTls};

use crate::{Gateway, GatewayError};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Checks the sources and starts one task for each; they end at the gateway's stop signal.
pub fn start_sources(
    gateway: &Arc<Gateway>,
    sources: Vec<ImapSourceConfig>,
) -> Result<Vec<JoinHandle<()>>, GatewayError> {
    let mut names = std::collections::HashSet::new();
    for s in &sources {
        s.validate()?;
        if gateway.store.org(&s.org)?.is_none() {
            return Err(GatewayError::Config(format!(
                "imap source {}: organization {:?} does not exist",
                s.name(),
                s.org
            )));
        }
        if !names.insert(s.name()) {
            return Err(GatewayError::Config(format!(
                "imap source {} is configured twice",
                s.name()
            )));
        }
    }
    // Another node sharing the store may read sources this one is not configured with.
    let shared = gateway.store.is_shared();
    if !shared {
        gateway.store.clear_mailbox_statuses()?;
    }
    // Each source is listed before the web server answers (not yet connected); on a
    // shared store only if no node lists it, so a node waiting to take over does not
    // hide the status of the node that reads it.
    let listed: Vec<String> = gateway
        .store
        .mailbox_statuses()?
        .into_iter()
        .map(|s| s.source)
        .collect();
    for s in &sources {
        if !shared || !listed.contains(&s.name()) {
            gateway
                .store
                .set_mailbox_status(&postdesk_store::MailboxStatus {
                    source: s.name(),
                    org: s.org.clone(),
                    ..Default::default()
                })?;
        }
    }
    Ok(sources
        .into_iter()
        .map(|s| tokio::spawn(source::run_source(gateway.clone(), s, gateway.stop.clone())))
        .collect())
}
