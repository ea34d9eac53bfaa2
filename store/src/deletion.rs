//! Deleting a ticket — its events, indexes, originals, files and mail that no other ticket
//! uses go; a deletion event stays in the log for audit — and the senders an organization
//! blocks (a ticket deleted as spam), whose mail is refused at the door.

use crate::bell::{bell_key, unread_key, BellItem};
use crate::codec::{decode, encode, key_num, num_key, read_counter, read_u64};
use crate::engine::ConflictableTransactionError::Abort;
use crate::message_ids::{mid_key, mid_ticket, midby_prefix, midfrom_key, ourmid_key};
use crate::outbox::{event_mail_prefix, pending_key, OutboxItem};
use crate::tickets::{bump, count_key, person_keys, recency_key, tev_key, time_entry_key};
use crate::{
    normalize_message_id, Decision, Event, EventKind, Outcome, Store, StoreError, Ticket,
    Visibility,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// A sender an organization refuses mail from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockedSender {
    pub org: String,
    /// The address, lowercase.
    pub sender: String,
    /// Who blocked it.
    pub by: String,
    /// The ticket deleted as spam that blocked it.
    pub ticket: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What a deletion removed, as reported to whoever asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deleted {
    pub ticket: u64,
    pub org: String,
    /// Entries removed from the log (the deletion event itself not counted).
    pub events: usize,
    /// The sender blocked with it, when deleted as spam.
    pub blocked: Option<String>,
}

/// The form of an address a block matches: lowercase, without a quoted local part's
/// quotes, a `+tag` or a trailing dot on the domain, so one block covers every spelling of
/// the same mailbox.
pub fn blocked_form(sender: &str) -> String {
    let a = sender.trim().to_ascii_lowercase();
    let Some((local, domain)) = a.rsplit_once('@') else {
        return a;
    };
    let local = local.trim_matches('"');
    let local = local.split_once('+').map_or(local, |(base, _)| base);
    format!("{local}@{}", domain.trim_end_matches('.'))
}

pub(crate) fn block_key(org: &str, sender: &str) -> String {
    format!("block/{org}/{}", blocked_form(sender))
}

impl Store {
    /// Where a block of an erased sender is kept.
    pub(crate) fn hashed_block_key(&self, org: &str, sender: &str) -> Result<String, StoreError> {
        Ok(format!(
            "block/{org}/{}",
            self.hashed_form(&blocked_form(sender))?
        ))
    }
}

/// Mail judged a duplicate of what ticket `ticket` holds: its original and decision-log
/// line answer to that ticket.
pub(crate) fn duplicate_key(ticket: u64, inbound: u64) -> Vec<u8> {
    let mut k = num_key("tdup/", ticket);
    k.extend_from_slice(&inbound.to_be_bytes());
    k
}

/// Which tickets show an inbound original (a held mail opened as its own ticket copies
/// its entry), so a deletion removes only originals no other ticket shows.
pub(crate) fn inbounduse_key(inbound: u64, ticket: u64) -> Vec<u8> {
    let mut k = num_key("inbounduse/", inbound);
    k.extend_from_slice(&ticket.to_be_bytes());
    k
}

/// Which ticket of which organization uses an attachment, so a deletion removes only the
/// contents no other ticket still shows.
pub(crate) fn blobuse_key(sha256: &str, ticket: u64) -> Vec<u8> {
    let mut k = format!("blobuse/{sha256}/").into_bytes();
    k.extend_from_slice(&ticket.to_be_bytes());
    k
}

/// What one deletion removes, gathered before its transaction (sled transactions cannot
/// scan; the transaction checks the ticket is still there, and once it is gone nothing can
/// be added to it).
#[derive(Default)]
struct Gathered {
    remove: BTreeSet<Vec<u8>>,
    /// Decisions about the ticket's mail: kept, without their subjects.
    decisions: Vec<(Vec<u8>, Decision)>,
    /// Unread bell entries removed, per staff member.
    unread: BTreeMap<String, u64>,
    /// Inbound originals that only this ticket used.
    originals: Vec<u64>,
    /// Attachment contents this ticket used.
    blobs: BTreeSet<String>,
    /// Stored bodies of its outbound mail with files.
    bodies: BTreeSet<String>,
    /// Outbox keys of its outbound mail (their files in the outbox folder go too).
    mails: BTreeSet<String>,
    /// The events' log numbers: its mail and bell entries are keyed by them.
    seqs: Vec<u64>,
}

impl Store {
    /// Deletes ticket `number`: its events, the indexes that find it, the Message-IDs that
    /// thread into it, its outbound mail, bell entries and reply grants, the originals of
    /// its mail and the files of its attachments unless another ticket uses them. A
    /// `Deleted` event naming who did it stays in the log. With `block`, the sender is
    /// also refused by the organization from now on (spam).
    pub fn delete_ticket(
        &self,
        number: u64,
        by: &str,
        at: OffsetDateTime,
        block: Option<&str>,
    ) -> Result<Deleted, StoreError> {
        self.delete_ticket_if(number, by, at, block, |_| true)?
            .ok_or_else(|| StoreError::NotFound(format!("ticket {number}")))
    }

    /// [`Store::delete_ticket`] if the ticket, as it is when the deletion commits, still
    /// satisfies `still` (retention: still closed long enough); `None` when it does not.
    /// A ticket written between the look at it and the commit is looked at again, so
    /// nothing is deleted on a stale view (a reply that reopened it, an index that moved).
    pub fn delete_ticket_if(
        &self,
        number: u64,
        by: &str,
        at: OffsetDateTime,
        block: Option<&str>,
        still: impl Fn(&Ticket) -> bool,
    ) -> Result<Option<Deleted>, StoreError> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            match self.try_delete(number, by, at, block, &still) {
                Err(StoreError::Changed) => continue,
                done => return done,
            }
        }
        Err(StoreError::Changed)
    }

    fn try_delete(
        &self,
        number: u64,
        by: &str,
        at: OffsetDateTime,
        block: Option<&str>,
        still: &impl Fn(&Ticket) -> bool,
    ) -> Result<Option<Deleted>, StoreError> {
        let tkey = num_key("ticket/", number);
        let Some(seen) = self.state.get(&tkey)? else {
            return Err(StoreError::NotFound(format!("ticket {number}")));
        };
        let ticket: Ticket = decode(&seen)?;
        if !still(&ticket) {
            return Ok(None);
        }
        let events = self.events_for(number)?;
        let gathered = self.gather(&ticket, &events)?;
        let blocked = block.map(|sender| BlockedSender {
            org: ticket.org.clone(),
            sender: blocked_form(sender),
            by: by.to_string(),
            ticket: Some(number),
            at,
        });
        let written = self.state.transaction(|tx| {
            match tx.get(&tkey)? {
                None => return Err(Abort(StoreError::NotFound(format!("ticket {number}")))),
                // Written since it was looked at: look again.
                Some(now) if now != seen => return Err(Abort(StoreError::Changed)),
                Some(_) => {}
            }
            remove_gathered(tx, &gathered)?;
            let ck = count_key(&ticket);
            let n = read_counter(tx.get(ck.as_bytes())?).saturating_sub(1);
            tx.insert(ck.as_bytes(), &n.to_be_bytes())?;
            for (k, d) in &gathered.decisions {
                tx.insert(k.as_slice(), encode(d).map_err(Abort)?)?;
            }
            if let Some(b) = &blocked {
                tx.insert(
                    block_key(&b.org, &b.sender).as_bytes(),
                    encode(b).map_err(Abort)?,
                )?;
            }
            let event = Event {
                kind: EventKind::Deleted,
                visibility: Visibility::Internal,
                seq: bump(tx, "counter/event")?,
                ..Event::by(number, by, true, at)
            };
            // In the log only: no index finds it from the ticket, which is gone.
            tx.insert(num_key("ev/", event.seq), encode(&event).map_err(Abort)?)?;
            Ok(())
        });
        if blocked.is_some() {
            self.lookups.forget();
        }
        written.map_err(StoreError::from)?;
        let late = self.sweep(number, &ticket.org, &gathered.seqs)?;
        // The contents go once nothing names them any more.
        for id in &gathered.originals {
            self.drop_original(*id)?;
        }
        for sha in gathered.bodies.iter().chain(&late.bodies) {
            self.drop_blob(sha)?;
        }
        for key in gathered.mails.iter().chain(&late.mails) {
            self.remove_delivered(key)?;
        }
        for sha in &gathered.blobs {
            if self
                .state
                .scan_prefix(format!("blobuse/{sha}/"))
                .next()
                .is_none()
            {
                self.drop_blob(sha)?;
            }
        }
        self.flush()?;
        Ok(Some(Deleted {
            ticket: number,
            org: ticket.org,
            events: events.len(),
            blocked: blocked.map(|b| b.sender),
        }))
    }

    /// What was added to the ticket between gathering and the transaction (an entry
    /// committed, mail or a bell entry queued): once the ticket is gone nothing more can
    /// be, so one more look finds the rest. Returns what it found, for the stored bodies.
    fn sweep(&self, number: u64, org: &str, seqs: &[u64]) -> Result<Gathered, StoreError> {
        let mut g = Gathered::default();
        let mut seqs = seqs.to_vec();
        for k in self.state.scan_prefix(num_key("tev/", number)).keys() {
            let k = k?;
            if let Some(seq) = key_num(&k) {
                g.remove.insert(num_key("ev/", seq));
                seqs.push(seq);
            }
            g.remove.insert(k.to_vec());
        }
        // An alert raised meanwhile left its record.
        for k in self.state.scan_prefix(num_key("monrec/", number)).keys() {
            g.remove.insert(k?.to_vec());
        }
        self.gather_mail(&mut g, number, org, &seqs)?;
        if !g.remove.is_empty() {
            self.state
                .transaction(|tx| remove_gathered(tx, &g))
                .map_err(StoreError::from)?;
        }
        Ok(g)
    }

    fn gather(&self, ticket: &Ticket, events: &[Event]) -> Result<Gathered, StoreError> {
        let number = ticket.number;
        let org = &ticket.org;
        let mut g = Gathered::default();
        g.remove.insert(num_key("ticket/", number));
        g.remove.insert(recency_key(ticket));
        g.remove.extend(person_keys(ticket));
        g.remove
            .extend(crate::monitors::keys_of_deleted(self, ticket)?);
        let points_here =
            |v: Option<crate::engine::Value>| v.is_some_and(|v| mid_ticket(&v) == Some(number));
        for e in events {
            g.remove.insert(num_key("ev/", e.seq));
            g.remove.insert(tev_key(number, e.seq));
            g.remove.extend(time_entry_key(e));
            g.remove.insert(num_key("held/", e.seq));
            for a in &e.attachments {
                g.remove.insert(blobuse_key(&a.sha256, number));
                g.blobs.insert(a.sha256.clone());
            }
            if let Some(m) = &e.message_id {
                if points_here(self.state.get(mid_key(org, m))?) {
                    g.remove.insert(mid_key(org, m).into_bytes());
                    g.remove.insert(midfrom_key(org, m).into_bytes());
                }
                for kv in self.state.scan_prefix(midby_prefix(org, m)) {
                    let (k, v) = kv?;
                    if points_here(Some(v)) {
                        g.remove.insert(k.to_vec());
                    }
                }
            }
            if let Some(inbound) = e.inbound {
                g.remove.insert(inbounduse_key(inbound, number));
                self.gather_original(&mut g, org, number, inbound, e.message_id.as_deref())?;
            }
        }
        for k in self.state.scan_prefix(num_key("tdup/", number)).keys() {
            let k = k?;
            if let Some(inbound) = key_num(&k) {
                self.gather_original(&mut g, org, number, inbound, None)?;
            }
            g.remove.insert(k.to_vec());
        }
        for k in self.state.scan_prefix(format!("grant/{number}/")).keys() {
            g.remove.insert(k?.to_vec());
        }
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        self.gather_mail(&mut g, number, org, &seqs)?;
        g.seqs = seqs;
        Ok(g)
    }

    /// The outbound mail records (with the Message-IDs replies would thread by, and stored
    /// bodies) and bell entries that the ticket's events `seqs` caused: both are keyed by
    /// event, so this reads what the ticket has, not every mail and bell entry there is.
    fn gather_mail(
        &self,
        g: &mut Gathered,
        number: u64,
        org: &str,
        seqs: &[u64],
    ) -> Result<(), StoreError> {
        for seq in seqs {
            for kv in self.state.scan_prefix(event_mail_prefix(*seq)) {
                let (k, v) = kv?;
                let item: OutboxItem = decode(&v)?;
                if item.ticket == number && item.org == org {
                    g.remove.insert(k.to_vec());
                    g.remove.insert(pending_key(&item.key).into_bytes());
                    g.mails.insert(item.key.clone());
                    // The stored body of a mail with files is that mail's alone.
                    g.bodies.extend(item.files.body.clone());
                    let mid = normalize_message_id(&item.message_id);
                    g.remove.insert(ourmid_key(org, &mid).into_bytes());
                    g.remove.insert(mid_key(org, &mid).into_bytes());
                }
            }
        }
        for staff in self.bell_owners()? {
            for seq in seqs {
                let k = bell_key(&staff, *seq);
                let Some(v) = self.state.get(&k)? else {
                    continue;
                };
                let item: BellItem = decode(&v)?;
                if item.ticket == number {
                    g.remove.insert(k);
                    if !item.read {
                        *g.unread.entry(item.staff).or_default() += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// The original of inbound message `inbound` goes unless its mail also made or joined
    /// a ticket elsewhere (one mail to two organizations); the decisions about it that
    /// name this ticket lose their subject.
    fn gather_original(
        &self,
        g: &mut Gathered,
        org: &str,
        number: u64,
        inbound: u64,
        message_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut used_elsewhere = false;
        for kv in self.state.scan_prefix(num_key("decision/", inbound)) {
            let (k, v) = kv?;
            let mut d: Decision = decode(&v)?;
            let ticket = match d.outcome {
                Outcome::Accepted { ticket, .. } | Outcome::Duplicate { ticket } => ticket,
                Outcome::Refused { .. } => continue,
            };
            if ticket == number && d.org == org {
                d.subject = format!("(ticket {number} deleted)");
                g.decisions.push((k.to_vec(), d));
            } else if self.state.contains_key(num_key("ticket/", ticket))? {
                used_elsewhere = true;
            }
        }
        for k in self
            .state
            .scan_prefix(num_key("inbounduse/", inbound))
            .keys()
        {
            let k = k?;
            let other = key_num(&k);
            if other.is_some_and(|t| t != number) {
                used_elsewhere = true;
            }
        }
        if !used_elsewhere && !g.originals.contains(&inbound) {
            g.originals.push(inbound);
            g.remove.insert(num_key("envelope/", inbound));
            // Where stores before `mid_entry` kept a Message-ID's first original.
            if let Some(m) = message_id {
                let rk = format!("rawmid/{m}");
                if self
                    .state
                    .get(&rk)?
                    .is_some_and(|v| read_u64(&v) == Some(inbound))
                {
                    g.remove.insert(rk.into_bytes());
                }
            }
        }
        Ok(())
    }

    /// Whether `org` refuses mail from `sender` (also when the sender was erased since:
    /// the block is then kept under a keyed hash of the address).
    pub fn is_blocked(&self, org: &str, sender: &str) -> Result<bool, StoreError> {
        let key = block_key(org, sender);
        if let Some(known) = self.lookups.blocked(&key) {
            return Ok(known);
        }
        let generation = self.lookups.generation();
        let blocked = self.state.contains_key(&key)?
            || self
                .state
                .contains_key(self.hashed_block_key(org, sender)?)?;
        self.lookups.keep_blocked(generation, &key, blocked);
        Ok(blocked)
    }

    /// The senders `org` refuses, by address.
    pub fn blocked_senders(&self, org: &str) -> Result<Vec<BlockedSender>, StoreError> {
        self.state
            .scan_prefix(format!("block/{org}/"))
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// Takes `sender` (any spelling of the blocked address) off `org`'s blocklist; `false`
    /// when it was not on it.
    pub fn unblock_sender(&self, org: &str, sender: &str) -> Result<bool, StoreError> {
        let hashed = self.hashed_block_key(org, sender)?;
        let removed = self.state.remove(block_key(org, sender));
        let removed_hashed = self.state.remove(hashed);
        self.lookups.forget();
        let gone = removed?.is_some() | removed_hashed?.is_some();
        self.flush()?;
        Ok(gone)
    }
}

/// Removes what `g` gathered and counts the unread bell entries among it off their
/// owners' counters.
fn remove_gathered(
    tx: &crate::engine::TransactionalTree,
    g: &Gathered,
) -> Result<(), crate::engine::ConflictableTransactionError<StoreError>> {
    for k in &g.remove {
        tx.remove(k.as_slice())?;
    }
    for (staff, gone) in &g.unread {
        let k = unread_key(staff);
        let n = read_counter(tx.get(k.as_bytes())?).saturating_sub(*gone);
        tx.insert(k.as_bytes(), &n.to_be_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::scratch::{scratch_org, scratch_store, scratch_ticket};
    use crate::{Change, Status, TicketAction};
    use time::OffsetDateTime;

    #[test]
    fn a_conditional_deletion_looks_at_the_ticket_as_it_is() {
        let (s, _dir) = scratch_store("delete-if");
        scratch_org(&s, "acme");
        let at = OffsetDateTime::UNIX_EPOCH;
        let t = scratch_ticket(&s, "acme", at);
        let closed = |t: &crate::Ticket| t.status == Status::Closed;
        // Not closed: kept, and nothing is taken from it.
        assert!(s
            .delete_ticket_if(t.number, "retention", at, None, closed)
            .expect("delete")
            .is_none());
        assert!(s.ticket(t.number).expect("read").is_some());
        s.act_on_ticket(&TicketAction {
            ticket: t.number,
            author: "bo@x.test".into(),
            by_staff: true,
            text: None,
            attachments: vec![],
            changes: vec![Change::Status(Status::Closed)],
            at,
        })
        .expect("close");
        let gone = s
            .delete_ticket_if(t.number, "retention", at, None, closed)
            .expect("delete");
        assert_eq!(gone.map(|d| d.ticket), Some(t.number));
        assert!(s.ticket(t.number).expect("read").is_none());
        assert!(matches!(
            s.delete_ticket_if(t.number, "retention", at, None, closed),
            Err(crate::StoreError::NotFound(_))
        ));
    }
}
