//! The outbox: rendered outbound mail keyed by (event, recipient), enqueued in the same
//! transaction that advances the notifier's cursor, so a replay never sends twice.

use crate::codec::{decode, encode, num_key, read_counter};
use crate::{AttachmentRef, Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OutboxStatus {
    Pending,
    Sent {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        via: String,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutboxItem {
    /// `<event seq>:<recipient>`: the same event never mails the same person twice.
    pub key: String,
    pub event: u64,
    pub ticket: u64,
    pub org: String,
    pub recipient: String,
    /// What it is: acknowledgement, notification, ...
    pub kind: String,
    pub message_id: String,
    /// The rendered message, exactly as it is sent; when it carries files, only its header
    /// (signed, up to and including the empty line), followed when sent by `files.body`.
    pub raw: Vec<u8>,
    /// The event's files this mail carries or names as left out.
    #[serde(default, skip_serializing_if = "MailFiles::is_empty")]
    pub files: MailFiles,
    pub status: OutboxStatus,
    pub attempts: u32,
    /// When a temporarily failed item is tried again.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// The last temporary failure, for the API.
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Files relayed with an outbound mail, by reference: the body holding them is stored once
/// as a blob shared by every recipient's mail of the event, so a retry or a restart sends
/// the same bytes and the outbox holds no copy of a file per recipient.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MailFiles {
    /// The SHA-256 of the blob that follows `raw`: the message body (text and files) after
    /// the header's empty line. `None`: `raw` is the whole mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The files in that body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached: Vec<AttachmentRef>,
    /// Files left out (too large to send together); the text names them instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<AttachmentRef>,
    /// The same mail without its files, a line naming them (signed, whole): sent instead
    /// when the relay refuses the mail with its files for their size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_files: Option<Vec<u8>>,
}

impl MailFiles {
    pub fn is_empty(&self) -> bool {
        self == &MailFiles::default()
    }
}

/// Puts one mail (`value`: the encoded `item`) in the outbox under its unique key, to be
/// sent, unless it is there already; whether it was added.
pub(crate) fn put_mail(
    tx: &crate::engine::TransactionalTree,
    item: &OutboxItem,
    value: &[u8],
) -> Result<bool, crate::engine::UnabortableTransactionError> {
    let k = item_key(&item.key);
    if tx.get(k.as_bytes())?.is_some() {
        return Ok(false);
    }
    tx.insert(k.as_bytes(), value)?;
    tx.insert(pending_key(&item.key).as_bytes(), &[])?;
    Ok(true)
}

fn item_key(key: &str) -> String {
    format!("outbox/{key}")
}

/// The marker of a mail still to be sent (or retried).
pub(crate) fn pending_key(key: &str) -> String {
    format!("outpending/{key}")
}

/// The outbox key of the mail event `event` causes to `recipient`: one per pair, so
/// planning an event twice queues nothing twice.
pub fn event_mail_key(event: u64, recipient: &str) -> String {
    format!("{event}:{recipient}")
}

/// Where the outbox keeps the mail event `seq` caused (see [`event_mail_key`]).
pub(crate) fn event_mail_prefix(seq: u64) -> String {
    item_key(&format!("{seq}:"))
}

/// Per-recipient log of automatic mail, for the hourly cap.
fn sent_key(group: &str, recipient: &str, at: OffsetDateTime) -> Vec<u8> {
    let ns = u64::try_from(at.unix_timestamp_nanos()).unwrap_or(0);
    num_key(&format!("{group}/{recipient}/"), ns)
}

/// The kind of mail a monitor's alert is: counted apart from the rest (see
/// [`Store::monitor_alert_count`]), so alerts and other mail do not use up each other's cap.
pub const MONITOR_ALERT_KIND: &str = "monitor_alert";

/// Which count an outbound mail adds to.
fn sent_group(kind: &str) -> &'static str {
    if kind == MONITOR_ALERT_KIND {
        "alertsent"
    } else {
        "autosent"
    }
}

impl Store {
    /// Enqueues `items` (skipping keys already present) and moves `consumer`'s cursor to
    /// `seq`, with the bell entries of those events, in one transaction. Returns the items
    /// actually added.
    pub fn enqueue_outbound(
        &self,
        consumer: &str,
        seq: u64,
        items: &[OutboxItem],
        bell: &[crate::BellItem],
    ) -> Result<usize, StoreError> {
        let encoded: Vec<Vec<u8>> = items.iter().map(encode).collect::<Result<_, _>>()?;
        let bell_items = bell;
        let bell: Vec<(Vec<u8>, Vec<u8>)> = bell
            .iter()
            .map(|b| {
                Ok((
                    crate::bell::bell_key(&b.staff, b.event),
                    crate::bell::encode_bell(b)?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let cursor = format!("cursor/{consumer}");
        let added = self
            .state
            .transaction(|tx| {
                let mut added = 0;
                for (v, item) in encoded.iter().zip(items) {
                    if put_mail(tx, item, v)? {
                        tx.insert(
                            sent_key(sent_group(&item.kind), &item.recipient, item.created_at),
                            &[],
                        )?;
                        // Replies to what we send thread by its Message-ID.
                        let mid = crate::normalize_message_id(&item.message_id);
                        tx.insert(
                            crate::message_ids::mid_key(&item.org, &mid).as_bytes(),
                            &item.ticket.to_be_bytes(),
                        )?;
                        tx.insert(
                            crate::message_ids::ourmid_key(&item.org, &mid).as_bytes(),
                            &[],
                        )?;
                        added += 1;
                    }
                }
                for ((k, v), b) in bell.iter().zip(bell_items) {
                    if tx.get(k)?.is_none() {
                        tx.insert(k.clone(), v.clone())?;
                        if !b.read {
                            crate::tickets::bump(tx, &crate::bell::unread_key(&b.staff))?;
                        }
                    }
                }
                let current = read_counter(tx.get(cursor.as_bytes())?);
                if seq > current {
                    tx.insert(cursor.as_bytes(), &seq.to_be_bytes())?;
                }
                Ok(added)
            })
            .map_err(StoreError::from)?;
        self.flush()?;
        Ok(added)
    }

    /// How many automatic mails went to `recipient` since `since`.
    pub fn automatic_mail_count(
        &self,
        recipient: &str,
        since: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        self.sent_count("autosent", recipient, since)
    }

    /// Forgets the per-recipient counts of automatic mail and alerts older than `before`:
    /// they serve an hourly cap, and would keep every address that was ever mailed.
    pub fn forget_sent_before(&self, before: OffsetDateTime) -> Result<usize, StoreError> {
        let floor = u64::try_from(before.unix_timestamp_nanos()).unwrap_or(0);
        let mut batch = crate::engine::Batch::default();
        let mut n = 0;
        for group in ["autosent/", "alertsent/"] {
            for k in self.state.scan_prefix(group).keys() {
                let k = k?;
                let at = k
                    .len()
                    .checked_sub(8)
                    .and_then(|i| crate::codec::read_u64(&k[i..]));
                if at.is_some_and(|ns| ns < floor) {
                    batch.remove(k);
                    n += 1;
                }
            }
        }
        self.state.apply_batch(batch)?;
        Ok(n)
    }

    /// How many monitor alerts went to `recipient` since `since`.
    pub fn monitor_alert_count(
        &self,
        recipient: &str,
        since: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        self.sent_count("alertsent", recipient, since)
    }

    fn sent_count(
        &self,
        group: &str,
        recipient: &str,
        since: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let from = sent_key(group, recipient, since);
        let to = sent_key(
            group,
            recipient,
            OffsetDateTime::now_utc() + time::Duration::days(1),
        );
        Ok(self.state.range(from..to).count())
    }

    /// Items due for delivery at `now`, oldest first.
    /// How many outbound mails are not sent yet (waiting, or between retries).
    pub fn outbox_queue_len(&self) -> Result<u64, StoreError> {
        Ok(self.state.count_prefix("outpending/")?)
    }

    pub fn pending_outbox(
        &self,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut out = Vec::new();
        for k in self.state.scan_prefix("outpending/").keys() {
            if out.len() >= limit {
                break;
            }
            let k = k?;
            let key = String::from_utf8_lossy(&k["outpending/".len()..]).into_owned();
            if let Some(v) = self.state.get(item_key(&key))? {
                let item = decode::<OutboxItem>(&v)?;
                if item.next_attempt_at.is_none_or(|t| t <= now) {
                    out.push(item);
                }
            }
        }
        out.sort_by_key(|i| i.created_at);
        Ok(out)
    }

    /// Records a delivery attempt's outcome (made durable by the next flush; a lost update
    /// only means the same key is delivered again). `false` when the mail is no longer
    /// there to record it for: deleted with its ticket, or emptied by an erasure while it
    /// was being sent (it stays as the erasure left it; a copy the transport kept should
    /// go too).
    pub fn set_outbox_status(
        &self,
        key: &str,
        status: OutboxStatus,
        next_attempt_at: Option<OffsetDateTime>,
        last_error: Option<String>,
    ) -> Result<bool, StoreError> {
        // In one transaction with the read: an erasure that cleared the item meanwhile is
        // not written over with the body seen before it.
        let k = item_key(key);
        let done = status != OutboxStatus::Pending;
        let recorded = self
            .state
            .transaction(|tx| {
                // The attempt is over: whichever node made it lets go of the mail.
                if tx.is_shared() {
                    tx.remove(crate::claims::outbound_claim_key(key))?;
                }
                let Some(v) = tx.get(k.as_bytes())? else {
                    return Ok(false);
                };
                let mut item: OutboxItem =
                    decode(&v).map_err(crate::engine::ConflictableTransactionError::Abort)?;
                if matches!(item.status, OutboxStatus::Failed { .. }) && item.raw.is_empty() {
                    return Ok(false);
                }
                item.attempts += 1;
                item.status = status.clone();
                item.next_attempt_at = next_attempt_at;
                if last_error.is_some() {
                    item.last_error = last_error.clone();
                }
                tx.insert(
                    k.as_bytes(),
                    encode(&item).map_err(crate::engine::ConflictableTransactionError::Abort)?,
                )?;
                if done {
                    tx.remove(pending_key(key).as_bytes())?;
                }
                Ok(true)
            })
            .map_err(StoreError::from)?;
        Ok(recorded)
    }

    /// Replaces a pending mail carrying files by its version without them (see
    /// [`MailFiles::without_files`]), due at once; records `reason`. Returns false (and
    /// changes nothing) when the item has no such version.
    pub fn send_without_files(&self, key: &str, reason: &str) -> Result<bool, StoreError> {
        let k = item_key(key);
        let Some(v) = self.state.get(&k)? else {
            return Err(StoreError::NotFound(format!("outbox item {key}")));
        };
        let mut item: OutboxItem = decode(&v)?;
        let Some(whole) = item.files.without_files.take() else {
            return Ok(false);
        };
        item.raw = whole;
        item.files.body = None;
        let attached = std::mem::take(&mut item.files.attached);
        item.files.left_out.splice(0..0, attached);
        item.attempts += 1;
        item.next_attempt_at = None;
        item.last_error = Some(reason.to_string());
        self.state.insert(k, encode(&item)?)?;
        // It goes again as a new attempt: any node that sends the outbox may take it.
        if self.is_shared() {
            self.state.remove(crate::claims::outbound_claim_key(key))?;
        }
        Ok(true)
    }

    /// Every outbox item, in key order, read as it goes (a person's export).
    pub fn outbox_items(&self) -> impl Iterator<Item = Result<OutboxItem, StoreError>> + '_ {
        self.state
            .scan_prefix("outbox/")
            .values()
            .map(|v| decode(&v?))
    }

    /// Every outbox item, newest first (for the API).
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let mut all: Vec<OutboxItem> = self
            .state
            .scan_prefix("outbox/")
            .values()
            .map(|v| decode(&v?))
            .collect::<Result<_, StoreError>>()?;
        all.sort_by_key(|i| std::cmp::Reverse(i.created_at));
        all.truncate(limit);
        Ok(all)
    }
}
