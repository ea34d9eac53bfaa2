//! One pass over a selected mailbox: finish the mailbox actions a crash left owed, then take
//! every message past the cursor into the spool, a chunk per commit, and only then mark or
//! move it. A message that cannot be imported is recorded with its reason and set aside.

use super::config::{AfterImport, ImapSourceConfig};
use super::connect::{timed, ImapSession};
use crate::admission::{admit, Admission, Limits};
use crate::{GatewayError, SpoolHandle};
use futures_util::TryStreamExt;
use postdesk_store::{
    Delivery, Envelope, FollowUp, Leadership, MailboxOrigin, RefusedDelivery, Source, Store,
};
use std::collections::BTreeMap;

/// Messages fetched and committed together; bounded in count and bytes so one source
/// holds little memory whatever the mailbox holds.
const CHUNK_MESSAGES: usize = 50;
const CHUNK_BYTES: u64 = 32 * 1024 * 1024;

/// What a pass needs besides the session.
pub(super) struct Importer<'a> {
    pub source: &'a ImapSourceConfig,
    pub name: &'a str,
    pub store: &'a Store,
    pub spool: &'a SpoolHandle,
    pub max_message_size: usize,
    pub max_line_length: usize,
    /// This node's lead of the source: asked before each chunk, so a node that lost it
    /// stops before the node that took over reads the same messages.
    pub lead: &'a Leadership,
}

impl Importer<'_> {
    /// Reads the selected folder (UIDVALIDITY `uidvalidity`) through; returns how many
    /// messages were committed. A deactivated organization's mailbox is left as it is
    /// (read again if it is reactivated).
    pub async fn pass(
        &self,
        session: &mut ImapSession,
        uidvalidity: u32,
    ) -> Result<usize, GatewayError> {
        if self
            .store
            .org(&self.source.org)?
            .is_some_and(|o| o.deactivated_at.is_some())
        {
            return Ok(0);
        }
        self.adopt_uidvalidity(uidvalidity)?;
        self.finish_follow_ups(session, uidvalidity).await?;
        let last = self.store.mailbox_cursor(self.name)?.last_uid;
        let mut sizes: Vec<(u32, u64)> = timed("UID FETCH", async {
            session
                .uid_fetch(format!("{}:*", last.saturating_add(1)), "(UID RFC822.SIZE)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?
        .iter()
        // "n:*" names the last message even when its UID is below n.
        .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
        .filter(|(uid, _)| *uid > last)
        .collect();
        sizes.sort_unstable();
        sizes.dedup_by_key(|(uid, _)| *uid);
        let mut committed = 0;
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for (uid, size) in sizes {
            let fits = size <= self.max_message_size as u64;
            if !chunk.is_empty()
                && (chunk.len() >= CHUNK_MESSAGES || (fits && chunk_bytes + size > CHUNK_BYTES))
            {
                if !self.lead.still_held() {
                    return Err(super::source::lost_lead());
                }
                committed += self.import_chunk(session, uidvalidity, &chunk).await?;
                chunk.clear();
                chunk_bytes = 0;
            }
            if fits {
                chunk_bytes += size;
            }
            chunk.push((uid, size));
        }
        if !chunk.is_empty() {
            if !self.lead.still_held() {
                return Err(super::source::lost_lead());
            }
            committed += self.import_chunk(session, uidvalidity, &chunk).await?;
        }
        Ok(committed)
    }

    /// A new UIDVALIDITY means the folder was renumbered: read it again from the start.
    fn adopt_uidvalidity(&self, uidvalidity: u32) -> Result<(), GatewayError> {
        let cursor = self.store.mailbox_cursor(self.name)?;
        if cursor.uidvalidity != uidvalidity {
            if cursor.uidvalidity != 0 {
                tracing::warn!(
                    source = self.name,
                    old = cursor.uidvalidity,
                    new = uidvalidity,
                    "UIDVALIDITY changed: reading the folder again; messages already imported are recognised and skipped"
                );
            }
            self.store.restart_mailbox_cursor(self.name, uidvalidity)?;
        }
        Ok(())
    }

    /// Marks or moves messages that were committed before a crash or lost connection
    /// stopped the importer from doing so.
    async fn finish_follow_ups(
        &self,
        session: &mut ImapSession,
        uidvalidity: u32,
    ) -> Result<(), GatewayError> {
        let owed = self.store.mailbox_follow_ups(self.name)?;
        if owed.is_empty() {
            return Ok(());
        }
        let (current, stale): (Vec<_>, Vec<_>) =
            owed.into_iter().partition(|(uv, _, _)| *uv == uidvalidity);
        if !stale.is_empty() {
            tracing::warn!(source = self.name, messages = stale.len(), "mailbox actions owed under an old UIDVALIDITY cannot be done; those messages stay where they are");
            let done: Vec<_> = stale.iter().map(|(uv, uid, _)| (*uv, *uid)).collect();
            self.store.clear_mailbox_follow_ups(self.name, &done)?;
        }
        let mut by_action: BTreeMap<FollowUp, Vec<u32>> = BTreeMap::new();
        for (_, uid, action) in current {
            by_action.entry(action).or_default().push(uid);
        }
        for (action, uids) in by_action {
            self.follow_up(session, &action, &uids).await?;
            let done: Vec<_> = uids.iter().map(|u| (uidvalidity, *u)).collect();
            self.store.clear_mailbox_follow_ups(self.name, &done)?;
        }
        Ok(())
    }

    /// Fetches, checks and commits a chunk, then does the mailbox actions.
    async fn import_chunk(
        &self,
        session: &mut ImapSession,
        uidvalidity: u32,
        chunk: &[(u32, u64)],
    ) -> Result<usize, GatewayError> {
        let (whole, oversize): (Vec<_>, Vec<_>) = chunk
            .iter()
            .partition(|(_, size)| *size <= self.max_message_size as u64);
        let mut bodies: BTreeMap<u32, (Vec<u8>, Option<u64>)> = BTreeMap::new();
        if !whole.is_empty() {
            let set = uid_set(whole.iter().map(|(uid, _)| *uid));
            for f in fetch(session, &set, "(UID BODY.PEEK[])").await? {
                if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                    bodies.insert(uid, (body.to_vec(), None));
                }
            }
        }
        if !oversize.is_empty() {
            let set = uid_set(oversize.iter().map(|(uid, _)| *uid));
            // Only the header is read, so the decision log can say whose mail it was.
            for f in fetch(session, &set, "(UID BODY.PEEK[HEADER])").await? {
                if let (Some(uid), Some(header)) = (f.uid, f.header()) {
                    let size = oversize.iter().find(|(u, _)| *u == uid).map(|(_, s)| *s);
                    bodies.insert(uid, (header.to_vec(), size));
                }
            }
        }
        let mut messages = Vec::new();
        let mut actions: BTreeMap<FollowUp, Vec<u32>> = BTreeMap::new();
        for (uid, _) in chunk {
            // Gone meanwhile (another client expunged it): nothing to import.
            let Some((raw, oversize)) = bodies.remove(uid) else {
                tracing::info!(
                    source = self.name,
                    uid,
                    "message vanished before it was read"
                );
                continue;
            };
            let envelope = self.envelope(&raw, oversize, uidvalidity, *uid)?;
            let follow_up = envelope.mailbox.as_ref().and_then(|m| m.follow_up.clone());
            if self.store.mailbox_has_imported(self.name, &raw)? {
                tracing::info!(
                    source = self.name,
                    uid,
                    "already imported (same contents seen before); not stored again"
                );
            } else {
                messages.push((envelope, raw));
            }
            if let Some(f) = follow_up {
                actions.entry(f).or_default().push(*uid);
            }
        }
        let committed = messages.len();
        if !messages.is_empty() {
            self.spool.store_all(messages).await?;
        }
        if let Some((last, _)) = chunk.last() {
            self.store
                .skip_mailbox_messages(self.name, uidvalidity, *last)?;
        }
        for (action, uids) in actions {
            self.follow_up(session, &action, &uids).await?;
            let done: Vec<_> = uids.iter().map(|u| (uidvalidity, *u)).collect();
            self.store.clear_mailbox_follow_ups(self.name, &done)?;
        }
        Ok(committed)
    }

    /// The envelope under which a fetched message enters the spool: delivered to the
    /// source's organization, or refused with the reason (too large, unreadable, not on
    /// the whitelist) so the decision log shows it.
    fn envelope(
        &self,
        raw: &[u8],
        oversize: Option<u64>,
        uidvalidity: u32,
        uid: u32,
    ) -> Result<Envelope, GatewayError> {
        let org = self.store.org(&self.source.org)?.ok_or_else(|| {
            GatewayError::Config(format!("organization {:?} does not exist", self.source.org))
        })?;
        let Admission {
            address,
            mail_from,
            refusal,
            ..
        } = admit(
            self.store,
            &org,
            raw,
            oversize,
            Limits {
                max_message_size: self.max_message_size,
                max_line_length: self.max_line_length,
            },
        );
        let (deliveries, refused, follow_up) = match refusal {
            None => (
                vec![Delivery {
                    org: org.slug.clone(),
                    address,
                }],
                vec![],
                match self.source.after {
                    AfterImport::Keep => None,
                    AfterImport::MarkSeen => Some(FollowUp::MarkSeen),
                    AfterImport::Move => Some(FollowUp::MoveTo(self.source.move_to.clone())),
                },
            ),
            Some(reason) => {
                let (follow_up, place) = match self.source.after {
                    AfterImport::Move => (
                        Some(FollowUp::MoveTo(self.source.failed_folder.clone())),
                        format!("moved to {}", self.source.failed_folder),
                    ),
                    _ => (None, "left unread in the mailbox".to_string()),
                };
                tracing::warn!(source = self.name, uid, reason = %reason, "message not imported; {place}");
                (
                    vec![],
                    vec![RefusedDelivery {
                        org: org.slug.clone(),
                        address,
                        reason: format!("{reason} (IMAP UID {uid} in {}; {place})", self.name),
                    }],
                    follow_up,
                )
            }
        };
        Ok(Envelope {
            source: Source::Imap,
            peer: format!("imap:{}:{}", self.source.host, self.source.port),
            helo: String::new(),
            mail_from,
            deliveries,
            refused,
            received_at: time::OffsetDateTime::now_utc(),
            mailbox: Some(MailboxOrigin {
                source: self.name.to_string(),
                uidvalidity,
                uid,
                follow_up,
            }),
        })
    }

    async fn follow_up(
        &self,
        session: &mut ImapSession,
        action: &FollowUp,
        uids: &[u32],
    ) -> Result<(), GatewayError> {
        let set = uid_set(uids.iter().copied());
        match action {
            FollowUp::MarkSeen => {
                timed("UID STORE", async {
                    session
                        .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await?;
            }
            FollowUp::MoveTo(folder) => {
                let caps = timed("CAPABILITY", session.capabilities()).await?;
                if caps.has_str("MOVE") {
                    timed("UID MOVE", session.uid_mv(&set, folder)).await?;
                } else {
                    // RFC 6851's fallback: copy, flag deleted, expunge just these.
                    timed("UID COPY", session.uid_copy(&set, folder)).await?;
                    timed("UID STORE", async {
                        session
                            .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    })
                    .await?;
                    if caps.has_str("UIDPLUS") {
                        timed("UID EXPUNGE", async {
                            session
                                .uid_expunge(&set)
                                .await?
                                .try_collect::<Vec<_>>()
                                .await
                        })
                        .await?;
                    } else {
                        timed("EXPUNGE", async {
                            session.expunge().await?.try_collect::<Vec<_>>().await
                        })
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

async fn fetch(
    session: &mut ImapSession,
    set: &str,
    items: &str,
) -> Result<Vec<async_imap::types::Fetch>, GatewayError> {
    timed("UID FETCH", async {
        session
            .uid_fetch(set, items)
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await
}

/// A UID set in IMAP syntax, runs collapsed: 1,2,3,7 -> "1:3,7".
pub(super) fn uid_set(uids: impl IntoIterator<Item = u32>) -> String {
    let mut uids: Vec<u32> = uids.into_iter().collect();
    uids.sort_unstable();
    uids.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_collapse_runs() {
        assert_eq!(uid_set([7, 1, 2, 3, 3, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set([5]), "5");
    }
}
