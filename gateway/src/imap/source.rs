//! A mailbox source's life: connect, read the folder through, wait for news (IDLE when the
//! server has it, polling otherwise), and after any failure reconnect with growing,
//! jittered delays. What it knows is kept in the store for the API.

use super::config::{AfterImport, ImapSourceConfig};
use super::connect::{connect, timed};
use super::folders::{discover, ensure_folder, Hierarchy};
use super::import::Importer;
use crate::{Gateway, GatewayError};
use async_imap::types::UnsolicitedResponse;
use postdesk_store::{Leadership, MailboxStatus};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// IDLE is renewed this often (RFC 2177: servers may drop it after 30 minutes).
const IDLE_RENEW: Duration = Duration::from_secs(20 * 60);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(5 * 60);

/// Runs `source` until `stop` turns true (or its sender is gone).
pub async fn run_source(
    gateway: Arc<Gateway>,
    source: ImapSourceConfig,
    mut stop: watch::Receiver<bool>,
) {
    let name = source.name();
    let mut status = MailboxStatus {
        source: name.clone(),
        org: source.org.clone(),
        ..Default::default()
    };
    let mut failures = 0u32;
    let mut lead = None;
    loop {
        if *stop.borrow() {
            break;
        }
        // Of nodes sharing a store, one reads the mailbox; the others wait to take over
        // (and leave the status to the one that reads).
        if !lead.as_ref().is_some_and(Leadership::still_held) {
            if lead.take().is_some() {
                postdesk_desk::metrics::metrics().job(&format!("imap/{name}"), false);
            }
            lead = gateway.store.lead(&format!("imap/{name}")).unwrap_or_else(|e| {
                tracing::error!(source = %name, error = %e, "cannot ask who reads the mailbox; retrying");
                None
            });
            postdesk_desk::metrics::metrics().job(&format!("imap/{name}"), lead.is_some());
            match &lead {
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(STANDBY_POLL) => continue,
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
                Some(_) if gateway.store.is_shared() => {
                    tracing::info!(source = %name, node = gateway.store.node(), "this node reads the mailbox")
                }
                Some(_) => {}
            }
            save(&gateway, &status);
        }
        let Some(leadership) = &lead else { continue };
        let result = connected(
            &gateway,
            &source,
            &name,
            &mut status,
            &mut stop,
            &mut failures,
            leadership,
        )
        .await;
        status.connected = false;
        match result {
            Ok(()) => break,
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = retry_delay(failures);
                tracing::warn!(source = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "mailbox source failed; will reconnect");
                status.last_error = Some(e.to_string());
                status.last_error_at = Some(time::OffsetDateTime::now_utc());
                save(&gateway, &status);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }
    }
    if lead.is_some() {
        save(&gateway, &status);
    }
}

/// One connection: returns `Ok` when told to stop, `Err` when the connection failed.
async fn connected(
    gateway: &Gateway,
    source: &ImapSourceConfig,
    name: &str,
    status: &mut MailboxStatus,
    stop: &mut watch::Receiver<bool>,
    failures: &mut u32,
    lead: &Leadership,
) -> Result<(), GatewayError> {
    let mut session = connect(source).await?;
    let capabilities = timed("CAPABILITY", session.capabilities()).await?;
    let idle = capabilities.has_str("IDLE");
    let hierarchy = discover(&mut session, capabilities.has_str("NAMESPACE")).await?;
    let source = on_server(source, &hierarchy)?;
    if source.after == AfterImport::Move {
        ensure_folder(&mut session, &source.move_to).await?;
        ensure_folder(&mut session, &source.failed_folder).await?;
    }
    let mailbox = timed("SELECT", session.select(&source.folder)).await?;
    let uidvalidity = mailbox
        .uid_validity
        .ok_or_else(|| GatewayError::Imap(format!("{} has no UIDVALIDITY", source.folder)))?;
    status.connected = true;
    status.idle = idle;
    save(gateway, status);
    tracing::info!(source = %name, idle, uidvalidity, "mailbox source connected");
    let importer = Importer {
        source: &source,
        name,
        store: &gateway.store,
        spool: &gateway.spool,
        max_message_size: gateway.config.max_message_size,
        max_line_length: gateway.config.max_line_length,
        lead,
    };
    loop {
        if !lead.still_held() {
            return Err(lost_lead());
        }
        while session.unsolicited_responses.try_recv().is_ok() {}
        let imported = importer.pass(&mut session, uidvalidity).await?;
        *failures = 0;
        status.last_success = Some(time::OffsetDateTime::now_utc());
        save(gateway, status);
        if imported > 0 {
            tracing::info!(source = %name, messages = imported, "imported from mailbox");
        }
        // Mail that arrived during the pass: read it now rather than after the next wait.
        let mut news = false;
        while let Ok(r) = session.unsolicited_responses.try_recv() {
            news |= matches!(
                r,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        if news {
            continue;
        }
        let stopped = if idle {
            let mut handle = session.idle();
            timed("IDLE", handle.init()).await?;
            let stopped = {
                let (wait, _interrupt) = handle.wait_with_timeout(IDLE_RENEW);
                tokio::select! {
                    r = wait => { r?; false }
                    _ = stop.wait_for(|s| *s) => true,
                    _ = lost(lead) => return Err(lost_lead()),
                }
            };
            session = timed("DONE", handle.done()).await?;
            stopped
        } else {
            tokio::select! {
                _ = tokio::time::sleep(source.poll_interval) => false,
                _ = stop.wait_for(|s| *s) => true,
                _ = lost(lead) => return Err(lost_lead()),
            }
        };
        if stopped {
            let _ = timed("LOGOUT", session.logout()).await;
            return Ok(());
        }
    }
}

/// How often a node that does not read a mailbox asks whether the one that does is gone.
const STANDBY_POLL: Duration = Duration::from_secs(2);

/// Returns once this node no longer leads the source (its database session ended).
async fn lost(lead: &Leadership) {
    while lead.still_held() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub(super) fn lost_lead() -> GatewayError {
    GatewayError::Imap("this node lost the lead of the mailbox (its database session ended)".into())
}

/// The source with its folders under the server's names. The store keeps the configured
/// name (`name`), so a changed server layout does not start the mailbox over.
fn on_server(
    source: &ImapSourceConfig,
    hierarchy: &Hierarchy,
) -> Result<ImapSourceConfig, GatewayError> {
    let mut on_server = source.clone();
    on_server.folder = hierarchy.server_name(&source.folder);
    on_server.move_to = hierarchy.server_name(&source.move_to);
    on_server.failed_folder = hierarchy.server_name(&source.failed_folder);
    tracing::debug!(source = %source.name(), ?hierarchy, folder = %on_server.folder, move_to = %on_server.move_to, failed_folder = %on_server.failed_folder, "folder names on the server");
    if source.after == AfterImport::Move
        && (on_server.move_to == on_server.folder || on_server.failed_folder == on_server.folder)
    {
        return Err(GatewayError::Config(format!(
            "imap source {}: on this server move_to and the failed folder are the folder read ({})",
            source.name(),
            on_server.folder
        )));
    }
    Ok(on_server)
}

/// 1 s doubling to 5 minutes, each between half and the whole of that, so many sources
/// that failed together do not come back together.
fn retry_delay(failures: u32) -> Duration {
    let ceiling = FIRST_RETRY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(LONGEST_RETRY);
    let [a, b] = postdesk_store::random_bytes::<2>();
    let fraction = 0.5 + f64::from(u16::from_le_bytes([a, b])) / f64::from(u16::MAX) / 2.0;
    ceiling.mul_f64(fraction)
}

fn save(gateway: &Gateway, status: &MailboxStatus) {
    if let Err(e) = gateway.store.set_mailbox_status(status) {
        tracing::error!(source = %status.source, error = %e, "cannot record mailbox source status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_grow_with_jitter_and_a_ceiling() {
        for _ in 0..50 {
            let first = retry_delay(1);
            assert!(first >= Duration::from_millis(500) && first <= FIRST_RETRY);
            let fourth = retry_delay(4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            assert!(retry_delay(40) <= LONGEST_RETRY);
        }
    }

    fn source(folder: &str, move_to: &str) -> ImapSourceConfig {
        ImapSourceConfig {
            org: "acme".into(),
            host: "127.0.0.1".into(),
            port: 143,
            tls: super::super::ImapTls::None,
            user: "support".into(),
            password: "secret".into(),
            folder: folder.into(),
            after: AfterImport::Move,
            move_to: move_to.into(),
            failed_folder: "Postdesk/Failed".into(),
            poll_interval: Duration::from_secs(30),
            ca_file: None,
        }
    }

    #[test]
    fn every_folder_gets_the_servers_name() {
        let courier = Hierarchy {
            prefix: "INBOX.".into(),
            delimiter: Some('.'),
        };
        let s = on_server(&source("Support/Desk", "Postdesk/Imported"), &courier);
        let s = s
            .as_ref()
            .map(|s| (&*s.folder, &*s.move_to, &*s.failed_folder));
        assert_eq!(
            s.ok(),
            Some((
                "INBOX.Support.Desk",
                "INBOX.Postdesk.Imported",
                "INBOX.Postdesk.Failed"
            ))
        );
    }

    #[test]
    fn names_that_meet_on_the_server_are_refused() {
        let dots = Hierarchy {
            prefix: String::new(),
            delimiter: Some('.'),
        };
        // Different as configured, one folder on a "." server: moving would loop.
        let same = source("Postdesk.Imported", "Postdesk/Imported");
        assert!(same.validate().is_ok());
        assert!(on_server(&same, &dots).is_err());
        let slash = Hierarchy {
            prefix: String::new(),
            delimiter: Some('/'),
        };
        assert!(on_server(&same, &slash).is_ok());
    }
}
