//! Mailbox sources read over IMAP: how far each is read, the mailbox actions still owed
//! after a commit, the contents already imported, and the status an admin sees.

use crate::codec::{decode, encode};
use crate::engine::Batch;
use crate::{FollowUp, MailboxCursor, MailboxOrigin, MailboxStatus, Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

fn cursor_key(source: &str) -> String {
    format!("mbcursor/{source}")
}

fn follow_up_prefix(source: &str) -> String {
    format!("mbfollow/{source}\0")
}

fn follow_up_key(source: &str, uidvalidity: u32, uid: u32) -> Vec<u8> {
    let mut k = follow_up_prefix(source).into_bytes();
    k.extend_from_slice(&uidvalidity.to_be_bytes());
    k.extend_from_slice(&uid.to_be_bytes());
    k
}

fn digest_prefix(source: &str) -> String {
    format!("mbdigest/{source}\0")
}

fn digest_key(source: &str, raw: &[u8]) -> Vec<u8> {
    let mut k = digest_prefix(source).into_bytes();
    k.extend_from_slice(&Sha256::digest(raw));
    k
}

fn status_key(source: &str) -> String {
    format!("mbstatus/{source}")
}

/// The mailbox source `postdesk import` reads an organization's files as: its cursor and
/// the contents it took are kept like an IMAP source's.
pub fn import_source(org: &str) -> String {
    format!("import/{org}")
}

impl Store {
    /// Forgets everything kept about mailbox source `source` (its cursor, the contents it
    /// took, the mailbox actions owed, its status).
    pub(crate) fn forget_mailbox(&self, source: &str) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for prefix in [digest_prefix(source), follow_up_prefix(source)] {
            for k in self.state.scan_prefix(prefix.as_bytes()).keys() {
                batch.remove(k?);
            }
        }
        batch.remove(cursor_key(source).as_bytes());
        batch.remove(status_key(source).as_bytes());
        Ok(self.state.apply_batch(batch)?)
    }

    /// Part of `spool_batch`: into `records`, the batch that spools the message, go the
    /// contents it had and the mailbox action still owed; its source's cursor moves past
    /// it in `cursors`, which the caller adds last. One atomic batch: a message is never
    /// spooled without them, nor they without it.
    pub(crate) fn note_imported(
        &self,
        records: &mut Batch,
        cursors: &mut BTreeMap<String, MailboxCursor>,
        origin: &MailboxOrigin,
        accepted: bool,
        raw: &[u8],
    ) -> Result<(), StoreError> {
        if let Some(follow_up) = &origin.follow_up {
            records.insert(
                follow_up_key(&origin.source, origin.uidvalidity, origin.uid),
                encode(follow_up)?,
            );
        }
        // The digest also counts the message: imported (1) or set aside (0), exactly once
        // per content whatever crashes or re-reads happen.
        records.insert(digest_key(&origin.source, raw), &[u8::from(accepted)][..]);
        let cursor = match cursors.entry(origin.source.clone()) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(self.mailbox_cursor(&origin.source)?)
            }
        };
        if cursor.uidvalidity != origin.uidvalidity {
            cursor.uidvalidity = origin.uidvalidity;
            cursor.last_uid = 0;
        }
        cursor.last_uid = cursor.last_uid.max(origin.uid);
        Ok(())
    }

    /// Adds the moved cursors of `note_imported` to `records`.
    pub(crate) fn cursor_writes(
        records: &mut Batch,
        cursors: BTreeMap<String, MailboxCursor>,
    ) -> Result<(), StoreError> {
        for (source, cursor) in cursors {
            records.insert(cursor_key(&source).into_bytes(), encode(&cursor)?);
        }
        Ok(())
    }

    /// How far `source` has been read (all zero for a source never read).
    pub fn mailbox_cursor(&self, source: &str) -> Result<MailboxCursor, StoreError> {
        match self.state.get(cursor_key(source))? {
            Some(v) => decode(&v),
            None => Ok(MailboxCursor::default()),
        }
    }

    /// Starts a new UIDVALIDITY epoch for `source`: its mailbox was renumbered, so it is
    /// read again from the start (contents already imported are recognised and skipped).
    pub fn restart_mailbox_cursor(&self, source: &str, uidvalidity: u32) -> Result<(), StoreError> {
        let mut cursor = self.mailbox_cursor(source)?;
        cursor.uidvalidity = uidvalidity;
        cursor.last_uid = 0;
        self.state.insert(cursor_key(source), encode(&cursor)?)?;
        self.db.flush()?;
        Ok(())
    }

    /// Moves the cursor past messages that needed no commit (already imported), so they
    /// are not read again. Not flushed: if lost, they are recognised again.
    pub fn skip_mailbox_messages(
        &self,
        source: &str,
        uidvalidity: u32,
        up_to_uid: u32,
    ) -> Result<(), StoreError> {
        let mut cursor = self.mailbox_cursor(source)?;
        if cursor.uidvalidity == uidvalidity && cursor.last_uid < up_to_uid {
            cursor.last_uid = up_to_uid;
            self.state.insert(cursor_key(source), encode(&cursor)?)?;
        }
        Ok(())
    }

    /// How many distinct messages `source` gave: (imported, set aside).
    pub fn mailbox_counts(&self, source: &str) -> Result<(u64, u64), StoreError> {
        let (mut imported, mut refused) = (0, 0);
        for v in self
            .state
            .scan_prefix(format!("mbdigest/{source}\0").as_bytes())
            .values()
        {
            if v?.as_ref() == [1] {
                imported += 1;
            } else {
                refused += 1;
            }
        }
        Ok((imported, refused))
    }

    /// Whether a message with exactly these bytes was already imported from `source`.
    pub fn mailbox_has_imported(&self, source: &str, raw: &[u8]) -> Result<bool, StoreError> {
        Ok(self.state.contains_key(digest_key(source, raw))?)
    }

    /// Mailbox actions still owed for `source`: (uidvalidity, uid, action), by UID.
    pub fn mailbox_follow_ups(
        &self,
        source: &str,
    ) -> Result<Vec<(u32, u32, FollowUp)>, StoreError> {
        let prefix = follow_up_prefix(source);
        let mut out = Vec::new();
        for item in self.state.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item?;
            let tail = &k[prefix.len()..];
            let (Ok(uv), Ok(uid)) = (
                <[u8; 4]>::try_from(tail.get(0..4).unwrap_or_default()),
                <[u8; 4]>::try_from(tail.get(4..8).unwrap_or_default()),
            ) else {
                return Err(StoreError::Corrupt("mailbox follow-up key".into()));
            };
            out.push((u32::from_be_bytes(uv), u32::from_be_bytes(uid), decode(&v)?));
        }
        Ok(out)
    }

    /// Forgets follow-ups that are done (or can no longer be done: another UIDVALIDITY).
    pub fn clear_mailbox_follow_ups(
        &self,
        source: &str,
        done: &[(u32, u32)],
    ) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        for (uv, uid) in done {
            batch.remove(follow_up_key(source, *uv, *uid));
        }
        self.state.apply_batch(batch)?;
        Ok(())
    }

    /// Records what the importer knows about a source now.
    pub fn set_mailbox_status(&self, status: &MailboxStatus) -> Result<(), StoreError> {
        self.state
            .insert(status_key(&status.source), encode(status)?)?;
        Ok(())
    }

    /// The status of every configured source.
    pub fn mailbox_statuses(&self) -> Result<Vec<MailboxStatus>, StoreError> {
        self.state
            .scan_prefix("mbstatus/")
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// Forgets every source's status: called at start, before the configured sources
    /// register, so a source removed from the configuration is no longer listed.
    pub fn clear_mailbox_statuses(&self) -> Result<(), StoreError> {
        let keys: Vec<_> = self
            .state
            .scan_prefix("mbstatus/")
            .keys()
            .collect::<Result<_, _>>()?;
        for k in keys {
            self.state.remove(k)?;
        }
        Ok(())
    }
}
