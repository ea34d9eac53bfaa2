//! The notifier loop: reads new events from its cursor, enqueues their mail and bell
//! entries with the cursor move in one transaction, then delivers due outbox items (concurrently, bounded,
//! to the relay), retrying temporary failures with backoff for up to three days.

use crate::plan::{may_hear_of, Planner, STAFF_ALERTS};
use crate::{NotifierError, RelayTransport, SendError, Transport};
use futures_util::StreamExt;
use postdesk_desk::unsubscribe::UNSUBSCRIBE_SECRET;
use postdesk_store::{OutboxItem, OutboxStatus, Store};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::time::Duration;
use tokio::runtime::Handle;

const CONSUMER: &str = "notifier";

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Automatic mails per recipient per hour, across all kinds.
    pub hourly_cap: usize,
    /// How often the event log is read.
    pub poll: Duration,
    /// First retry delay after a temporary failure; it doubles up to `max_retry_delay`.
    pub retry_base: Duration,
    pub max_retry_delay: Duration,
    /// Temporary failures are retried this long, then the mail is marked failed.
    pub give_up_after: Duration,
    /// Mails sent to the relay at once (mails with files: one at a time).
    pub concurrency: usize,
    /// Largest outbound mail, files included; the files that do not fit are named in
    /// the text instead.
    pub max_message_bytes: u64,
    /// The web UI's base URL, for links to a ticket's page in staff mail and (when https)
    /// one-click unsubscribe links; empty = none.
    pub public_url: String,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            hourly_cap: 10,
            poll: Duration::from_millis(200),
            retry_base: Duration::from_secs(60),
            max_retry_delay: Duration::from_secs(6 * 3600),
            give_up_after: Duration::from_secs(3 * 86400),
            concurrency: 4,
            max_message_bytes: 25 * 1024 * 1024,
            public_url: String::new(),
        }
    }
}

pub struct Notifier {
    store: Store,
    transport: Transport,
    config: NotifierConfig,
}

impl Notifier {
    pub fn new(store: Store, transport: Transport, config: NotifierConfig) -> Notifier {
        Notifier {
            store,
            transport,
            config,
        }
    }

    /// Moves new events into the outbox; the cursor moves in the same transaction.
    fn plan_new_events(&self) -> Result<(), NotifierError> {
        let planner = Planner {
            store: &self.store,
            secret: self.store.secret("reply-token")?,
            message_id_secret: self.store.secret("message-id")?,
            unsubscribe_secret: self.store.secret(UNSUBSCRIBE_SECRET)?,
            hourly_cap: self.config.hourly_cap,
            max_message_bytes: self.config.max_message_bytes,
            public_url: self.config.public_url.clone(),
        };
        loop {
            let cursor = self.store.cursor(CONSUMER)?;
            let events = self.store.events_since(cursor, 200)?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(());
            };
            let (mut items, mut bell) = (Vec::new(), Vec::new());
            for e in &events {
                let planned = planner.plan(e, &items)?;
                bell.extend(crate::attachments::left_out_bell(&self.store, e, &planned)?);
                items.extend(planned);
                bell.extend(planner.bell(e)?);
            }
            self.store.enqueue_outbound(CONSUMER, last, &items, &bell)?;
        }
    }

    /// One pass: plan, then deliver what is due. Returns how many were delivered.
    pub fn run_once(&self, runtime: &Handle) -> Result<usize, NotifierError> {
        self.pass(runtime, &|| true)
    }

    /// One pass while `leading()` says this node still sends the outbox: asked before each
    /// mail, so a node that lost the lead (its lock's session ended) stops at once and the
    /// node that took over does not find mail this one is still sending, but for the few
    /// in flight.
    fn pass(&self, runtime: &Handle, leading: &dyn Fn() -> bool) -> Result<usize, NotifierError> {
        self.plan_new_events()?;
        let now = time::OffsetDateTime::now_utc();
        // A sign-in request that cannot be made into mail must not hold up the outbox.
        if let Err(e) = crate::access_mail::queue_sign_in_mail(&self.store, now) {
            tracing::error!(error = %e, "sign-in mail not queued; trying again next pass");
        }
        let mut due = Vec::new();
        for item in self.store.pending_outbox(now, 200)? {
            // An alert waiting for a retry goes only to someone who may still see the
            // ticket (an employee removed or unassigned meanwhile hears nothing more).
            if STAFF_ALERTS.contains(&item.kind.as_str()) {
                let allowed = match self.store.ticket(item.ticket)? {
                    Some(t) => may_hear_of(&self.store, &item.recipient, &t)?,
                    None => false,
                };
                if !allowed {
                    tracing::info!(ticket = item.ticket, recipient = %item.recipient, kind = %item.kind, "alert dropped: the recipient may no longer see the ticket");
                    self.store.set_outbox_status(
                        &item.key,
                        OutboxStatus::Failed {
                            reason: "not sent: the recipient may no longer see the ticket".into(),
                        },
                        None,
                        None,
                    )?;
                    continue;
                }
            }
            due.push(item);
        }
        if due.is_empty() {
            return Ok(0);
        }
        // Each outcome is recorded as soon as it is known, not after the pass: a node that
        // dies in the middle sends again only the mail it had in hand.
        let sent = match &self.transport {
            Transport::Folder(folder) => {
                let mut sent = 0;
                for item in due {
                    if !leading() {
                        break;
                    }
                    if !self.claimed(&item) {
                        continue;
                    }
                    let r = self.message(&item).and_then(|raw| {
                        folder
                            .deliver(&item.key, &raw)
                            .map(|p| format!("folder {}", p.display()))
                            .map_err(|e| SendError::Temporary(e.to_string()))
                    });
                    sent += self.record(item, r)?;
                }
                sent
            }
            Transport::Relay(relay) => runtime.block_on(async {
                // A mail with files is whole in memory only while it is sent: one at a time.
                let (with_files, plain): (Vec<OutboxItem>, Vec<OutboxItem>) =
                    due.into_iter().partition(|i| i.files.body.is_some());
                let mut sends = futures_util::stream::iter(plain)
                    .take_while(|_| std::future::ready(leading()))
                    .filter(|item| std::future::ready(self.claimed(item)))
                    .map(|item| self.relay_one(relay, item))
                    .buffer_unordered(self.config.concurrency.max(1));
                let mut sent = 0;
                while let Some((item, r)) = sends.next().await {
                    sent += self.record(item, r)?;
                }
                for item in with_files {
                    if !leading() {
                        break;
                    }
                    if !self.claimed(&item) {
                        continue;
                    }
                    let (item, r) = self.relay_one(relay, item).await;
                    sent += self.record(item, r)?;
                }
                Ok::<_, NotifierError>(sent)
            })?,
        };
        self.store.flush()?;
        Ok(sent)
    }

    /// Whether this node may send `item` now: no other node sharing the store is sending
    /// it (a store that cannot be asked: not now, the next pass asks again).
    fn claimed(&self, item: &OutboxItem) -> bool {
        self.store.claim_outbound(&item.key).unwrap_or_else(|e| {
            tracing::error!(key = %item.key, error = %e, "cannot claim an outbound mail; next pass");
            false
        })
    }

    /// Records what became of sending `item`; 1 if it was sent.
    fn record(
        &self,
        item: OutboxItem,
        result: Result<String, SendError>,
    ) -> Result<usize, NotifierError> {
        let now = time::OffsetDateTime::now_utc();
        let (status, next_attempt, last_error) = match result {
            Ok(via) => {
                tracing::info!(ticket = item.ticket, recipient = %item.recipient, kind = %item.kind, %via, "mail sent");
                (OutboxStatus::Sent { at: now, via }, None, None)
            }
            Err(SendError::TooLarge(reason)) if item.files.without_files.is_some() => {
                // Never no mail: the text goes again at once, naming the files.
                tracing::warn!(ticket = item.ticket, recipient = %item.recipient, %reason, "relay refused the mail's size; sending it without its files");
                self.store.send_without_files(
                    &item.key,
                    &format!("the relay refused the mail with its files ({reason}); sent without them, named in the text"),
                )?;
                return Ok(0);
            }
            Err(SendError::Permanent(reason) | SendError::TooLarge(reason)) => {
                tracing::warn!(recipient = %item.recipient, %reason, "mail refused permanently");
                (OutboxStatus::Failed { reason }, None, None)
            }
            Err(SendError::Temporary(reason)) => {
                let age = now - item.created_at;
                if age >= self.config.give_up_after {
                    let reason = format!("gave up after {} hours: {reason}", age.whole_hours());
                    (OutboxStatus::Failed { reason }, None, None)
                } else {
                    let next = now + self.retry_delay(item.attempts);
                    tracing::info!(recipient = %item.recipient, %reason, next = %next, "temporary failure; will retry");
                    (OutboxStatus::Pending, Some(next), Some(reason))
                }
            }
        };
        let sent = usize::from(matches!(status, OutboxStatus::Sent { .. }));
        postdesk_desk::metrics::metrics().outbound(match status {
            OutboxStatus::Sent { .. } => "sent",
            OutboxStatus::Pending => "retry",
            _ => "failed",
        });
        let recorded = self
            .store
            .set_outbox_status(&item.key, status, next_attempt, last_error)?;
        // Deleted or erased while it was being written to the folder: the copy goes too.
        if let (false, Transport::Folder(folder)) = (recorded, &self.transport) {
            match std::fs::remove_file(folder.path_of(&item.key)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::error!(key = %item.key, error = %e, "cannot remove the copy of a deleted mail");
                }
                _ => {}
            }
        }
        Ok(sent)
    }

    /// One item to the relay, from the organization's first address.
    async fn relay_one(
        &self,
        relay: &RelayTransport,
        item: OutboxItem,
    ) -> (OutboxItem, Result<String, SendError>) {
        let from = self
            .store
            .org(&item.org)
            .ok()
            .flatten()
            .and_then(|o| o.addresses.first().cloned())
            .unwrap_or_default();
        let r = match self.message(&item) {
            Ok(raw) => relay
                .send(&from, &item.recipient, &raw)
                .await
                .map(|()| "relay".to_string()),
            Err(e) => Err(e),
        };
        (item, r)
    }

    /// The bytes to send for `item`: `raw`, then the stored body when it carries files,
    /// checked against its SHA-256 so a retry sends exactly what was signed. Should that
    /// body be gone, the item becomes its version without files (never no mail at all).
    fn message<'a>(&self, item: &'a OutboxItem) -> Result<Cow<'a, [u8]>, SendError> {
        let Some(sha256) = &item.files.body else {
            return Ok(Cow::Borrowed(&item.raw));
        };
        let temporary = |e: postdesk_store::StoreError| SendError::Temporary(e.to_string());
        let body = self.store.blob(sha256).map_err(temporary)?;
        if let Some(body) =
            body.filter(|b| data_encoding::HEXLOWER.encode(&Sha256::digest(b)) == *sha256)
        {
            let mut raw = Vec::with_capacity(item.raw.len() + body.len());
            raw.extend_from_slice(&item.raw);
            raw.extend_from_slice(&body);
            return Ok(Cow::Owned(raw));
        }
        tracing::error!(ticket = item.ticket, recipient = %item.recipient, %sha256, "the body with the mail's files is gone or damaged; sending it without them");
        match &item.files.without_files {
            Some(whole) => {
                self.store
                    .send_without_files(&item.key, "the stored files are gone; sent without them")
                    .map_err(temporary)?;
                Ok(Cow::Borrowed(whole))
            }
            None => Err(SendError::Permanent(
                "the body with the mail's files is gone".into(),
            )),
        }
    }

    /// Exponential backoff with ±20% jitter, so retries from many mails spread out.
    fn retry_delay(&self, attempts_so_far: u32) -> time::Duration {
        let base = self.config.retry_base.as_secs_f64();
        let raw = (base * 2f64.powi(attempts_so_far.min(20) as i32))
            .min(self.config.max_retry_delay.as_secs_f64());
        let jitter: f64 = 0.8 + 0.4 * rand::random::<f64>();
        time::Duration::seconds_f64(raw * jitter)
    }

    /// Runs on its own thread until the server's stop signal (true, or its sender gone);
    /// relay sends run on the server's (multi-thread) runtime, `runtime`.
    /// On a store several nodes share, one of them at a time plans and sends (see
    /// [`Store::lead`]); the others wait to take over.
    pub fn run(self, runtime: Handle, stop: tokio::sync::watch::Receiver<bool>) {
        let mut lead = None;
        while !*stop.borrow() && stop.has_changed().is_ok() {
            if !lead
                .as_ref()
                .is_some_and(postdesk_store::Leadership::still_held)
            {
                if lead.take().is_some() {
                    tracing::warn!(
                        "this node lost the lead of the outbox (its lock's session ended)"
                    );
                }
                lead = self.store.lead("outbox").unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot ask who sends the outbox; retrying");
                    None
                });
                postdesk_desk::metrics::metrics().job("outbox", lead.is_some());
                match &lead {
                    Some(_) if self.store.is_shared() => {
                        tracing::info!(node = self.store.node(), "this node sends the outbox")
                    }
                    Some(_) => {}
                    None => {
                        std::thread::sleep(self.config.poll);
                        continue;
                    }
                }
            }
            // A panic in a library must not silence all outbound mail: log, go on.
            let leading = || {
                lead.as_ref()
                    .is_some_and(postdesk_store::Leadership::still_held)
            };
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.pass(&runtime, &leading)
            })) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "notifier pass failed; retrying"),
                Err(_) => tracing::error!("notifier pass panicked; retrying"),
            }
            std::thread::sleep(self.config.poll);
        }
    }
}
