//! The notifier loop: reads new events from its cursor, enqueues their mail with the
//! cursor move in one transaction, then delivers pending outbox items.

use crate::plan::Planner;
use crate::{FolderTransport, NotifierError};
use postdesk_store::{OutboxStatus, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CONSUMER: &str = "notifier";

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Automatic mails per recipient per hour, across all kinds.
    pub hourly_cap: usize,
    /// How often the event log is read.
    pub poll: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            hourly_cap: 10,
            poll: Duration::from_millis(200),
        }
    }
}

pub struct Notifier {
    store: Store,
    transport: FolderTransport,
    config: NotifierConfig,
}

impl Notifier {
    pub fn new(store: Store, transport: FolderTransport, config: NotifierConfig) -> Notifier {
        Notifier {
            store,
            transport,
            config,
        }
    }

    /// Plans mail for new events and delivers what is pending; returns how many were sent.
    pub fn run_once(&self) -> Result<usize, NotifierError> {
        let planner = Planner {
            store: &self.store,
            secret: self.store.secret("reply-token")?,
            hourly_cap: self.config.hourly_cap,
        };
        loop {
            let cursor = self.store.cursor(CONSUMER)?;
            let events = self.store.events_since(cursor, 200)?;
            let Some(last) = events.last().map(|e| e.seq) else {
                break;
            };
            let mut items = Vec::new();
            for e in &events {
                let planned = planner.plan(e, &items)?;
                items.extend(planned);
            }
            self.store.enqueue_outbound(CONSUMER, last, &items)?;
        }
        let mut sent = 0;
        for item in self.store.pending_outbox(100)? {
            match self.transport.deliver(&item.key, &item.raw) {
                Ok(path) => {
                    tracing::info!(ticket = item.ticket, recipient = %item.recipient, kind = %item.kind, path = %path.display(), "mail written to the outbox folder");
                    self.store.set_outbox_status(
                        &item.key,
                        OutboxStatus::Sent {
                            at: time::OffsetDateTime::now_utc(),
                            via: "folder".into(),
                        },
                    )?;
                    sent += 1;
                }
                // A folder that cannot be written is a temporary failure: retried next round.
                Err(e) => {
                    tracing::error!(error = %e, key = %item.key, "outbox folder write failed")
                }
            }
        }
        if sent > 0 {
            self.store.flush()?;
        }
        Ok(sent)
    }

    /// Runs until `stop` is set.
    pub fn run(self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.run_once() {
                tracing::error!(error = %e, "notifier pass failed; retrying");
            }
            std::thread::sleep(self.config.poll);
        }
    }
}
