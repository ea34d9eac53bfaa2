//! Applying what the pipeline decided about inbound mail: one transaction per delivery
//! (dedup by Message-ID, the ticket, its event, the decision, the spool marker), several
//! per pipeline commit, and the decision log.

use crate::codec::{decode, encode, num_key};
use crate::deletion::duplicate_key;
use crate::engine::{ConflictableTransactionError::Abort, TransactionalTree};
use crate::message_ids::{
    mid_entry, mid_key, mid_origin, mid_ticket, midby_key, midfrom_key, normalize_message_id,
};
use crate::spool::finish_inbound;
use crate::tickets::{append_change, append_event, bump, new_ticket, record_activity, save_ticket};
use crate::{
    AttachmentRef, Decision, Event, EventKind, Outcome, Status, Store, StoreError, Ticket,
    TicketType, Visibility,
};
use time::OffsetDateTime;

/// Where a delivery goes.
#[derive(Debug, Clone)]
pub enum TicketTarget {
    Existing(u64),
    New {
        ticket_type: TicketType,
        summary: String,
        requester: String,
        automatic: bool,
    },
}

/// Everything the pipeline decided about one delivery of one inbound message, applied
/// atomically by [`Store::commit_delivery`].
#[derive(Debug, Clone)]
pub struct DeliveryCommit {
    pub inbound: u64,
    pub org: String,
    pub message_id: Option<String>,
    pub from: String,
    pub subject: String,
    pub target: TicketTarget,
    pub kind: EventKind,
    pub by_staff: bool,
    pub text: String,
    pub attachments: Vec<AttachmentRef>,
    pub automatic: bool,
    /// Addresses that now take part in the ticket (sender, other recipients).
    pub participants: Vec<String>,
    /// Addresses copied on the mail, added to the ticket's CC list.
    pub cc: Vec<String>,
    pub rule: String,
    pub notes: Vec<String>,
    /// Public reply, or an internal note (staff `#note`).
    pub visibility: Visibility,
    /// Field changes (staff mail commands), each appended as an `Update` event.
    pub changes: Vec<crate::Change>,
    /// This is the message's last delivery: the spool marker goes with it.
    pub last_delivery: bool,
    /// From a non-participant: an internal entry that changes nothing (see `Event::held`).
    pub held: bool,
    /// The From may be forged (see `Event::suspected_spoofing`).
    pub suspected_spoofing: bool,
    /// Read by `postdesk import`: history (see [`crate::Event::imported`]).
    pub imported: bool,
    pub at: OffsetDateTime,
}

/// Most addresses a ticket's CC list grows to from mail; staff may set more by hand.
pub const MAX_TICKET_CC: usize = 50;
/// Most addresses kept in a ticket's list of everyone who wrote or was written to.
pub const MAX_PARTICIPANTS: usize = 200;

/// One write the pipeline decided for a message: a delivery into a ticket, or a decision
/// that changes no ticket (a refusal). Committed in order by [`Store::commit_pipeline`].
#[derive(Debug, Clone)]
pub enum PipelineWrite {
    Delivery(DeliveryCommit),
    Decision {
        decision: Decision,
        /// This is the message's last delivery: the spool marker goes with it.
        last_delivery: bool,
    },
}

pub(crate) fn decision_key(inbound: u64, org: &str) -> Vec<u8> {
    let mut k = num_key("decision/", inbound);
    k.extend_from_slice(org.as_bytes());
    k
}

/// The transaction body of [`Store::commit_delivery`].
fn apply_delivery(
    tx: &TransactionalTree,
    c: &DeliveryCommit,
) -> crate::engine::ConflictableTransactionResult<Decision, StoreError> {
    let mid = c.message_id.as_deref().map(normalize_message_id);
    let dkey = decision_key(c.inbound, &c.org);
    if let Some(done) = tx.get(&dkey)? {
        let d: Decision = decode(&done).map_err(Abort)?;
        if c.last_delivery {
            finish_inbound(tx, c.inbound)?;
        }
        return Ok(d);
    }
    let mut decision = Decision {
        inbound: c.inbound,
        org: c.org.clone(),
        message_id: mid.clone(),
        from: c.from.clone(),
        subject: c.subject.clone(),
        outcome: Outcome::Refused {
            reason: String::new(),
        },
        notes: c.notes.clone(),
        at: c.at,
    };
    // The first sender of a Message-ID owns it: the same id from the same sender again is
    // a duplicate (a retry, SMTP and IMAP overlap); from another sender it is a message of
    // its own, so nobody who learns an id early can make the real mail vanish.
    let mut owns_mid = mid.is_some();
    if let Some(m) = &mid {
        // The same sender's mail with this id, or an id seen before senders were kept
        // (older stores, our own outbound ids): a duplicate.
        let seen = match tx.get(midby_key(&c.org, m, &c.from).as_bytes())? {
            Some(t) => mid_ticket(&t),
            None => match tx.get(mid_key(&c.org, m).as_bytes())? {
                Some(entry) => {
                    let owner = match mid_origin(&entry) {
                        Some((_, from)) => Some(from.to_string()),
                        None => tx
                            .get(midfrom_key(&c.org, m).as_bytes())?
                            .map(|f| String::from_utf8_lossy(&f).into_owned()),
                    };
                    if owner.is_none_or(|o| o == c.from) {
                        mid_ticket(&entry)
                    } else {
                        owns_mid = false;
                        decision.notes.push(
                            "another sender used this Message-ID first; kept as a message of its own"
                                .into(),
                        );
                        None
                    }
                }
                None => None,
            },
        };
        if let Some(ticket) = seen {
            decision.outcome = Outcome::Duplicate { ticket };
            tx.insert(dkey, encode(&decision).map_err(Abort)?)?;
            // The ticket answers for this original too: it goes when the ticket does.
            tx.insert(duplicate_key(ticket, c.inbound), &[])?;
            if c.last_delivery {
                finish_inbound(tx, c.inbound)?;
            }
            return Ok(decision);
        }
    }
    let (mut ticket, new_ticket): (Ticket, bool) = match &c.target {
        TicketTarget::Existing(n) => {
            let t = tx
                .get(num_key("ticket/", *n))?
                .ok_or_else(|| Abort(StoreError::NotFound(format!("ticket {n}"))))?;
            (decode::<Ticket>(&t).map_err(Abort)?, false)
        }
        TicketTarget::New {
            ticket_type,
            summary,
            requester,
            automatic,
        } => {
            let t = new_ticket(tx, &c.org, *ticket_type, summary, requester, c.at)?;
            (
                Ticket {
                    automatic: *automatic,
                    imported: c.imported,
                    ..t
                },
                true,
            )
        }
    };
    let before = (!new_ticket).then(|| ticket.clone());
    // A held mail widens nothing: who takes part and who is copied stay as they were.
    if !c.held {
        for p in &c.participants {
            if ticket.participants.len() < MAX_PARTICIPANTS && !ticket.participants.contains(p) {
                ticket.participants.push(p.clone());
            }
        }
        for p in &c.cc {
            if ticket.cc.len() < MAX_TICKET_CC && !ticket.cc.contains(p) && *p != ticket.requester {
                ticket.cc.push(p.clone());
            }
        }
    }
    // A person writing back reopens a ticket that was waiting or done (old mail read in
    // by an import does not: it is history).
    if !new_ticket
        && !c.imported
        && !c.held
        && !c.by_staff
        && !c.automatic
        && c.kind == EventKind::Reply
        && ticket.status != Status::Open
    {
        ticket.status = Status::Open;
    }
    // Old mail read into a ticket does not make it older; live mail makes it live.
    ticket.updated_at = ticket.updated_at.max(c.at);
    ticket.imported &= c.imported;
    let seq = bump(tx, "counter/event")?;
    let event = Event {
        seq,
        ticket: ticket.number,
        kind: c.kind,
        author: c.from.clone(),
        by_staff: c.by_staff,
        visibility: c.visibility,
        text: c.text.clone(),
        message_id: mid.clone(),
        attachments: c.attachments.clone(),
        inbound: Some(c.inbound),
        automatic: c.automatic,
        change: None,
        held: c.held,
        suspected_spoofing: c.suspected_spoofing,
        quiet: false,
        monitor: None,
        imported: c.imported,
        at: c.at,
    };
    append_event(tx, &event)?;
    record_activity(&mut ticket, &event);
    // Commands come after the text they arrived with, one event each.
    for change in &c.changes {
        append_change(tx, &mut ticket, change, &event)?;
    }
    save_ticket(tx, before.as_ref(), &ticket)?;
    // Mail whose From may be forged takes no hold on its Message-ID: a forgery sent first
    // with someone's id would otherwise make their real mail a duplicate of it.
    if let Some(m) = mid.as_ref().filter(|_| !c.suspected_spoofing) {
        if owns_mid {
            let entry = mid_entry(ticket.number, c.inbound, &c.from);
            tx.insert(mid_key(&c.org, m).as_bytes(), entry)?;
        } else {
            let by = midby_key(&c.org, m, &c.from);
            tx.insert(by.as_bytes(), &ticket.number.to_be_bytes())?;
        }
    }
    decision.outcome = Outcome::Accepted {
        ticket: ticket.number,
        new_ticket,
        rule: c.rule.clone(),
    };
    tx.insert(dkey, encode(&decision).map_err(Abort)?)?;
    if c.last_delivery {
        finish_inbound(tx, c.inbound)?;
    }
    Ok(decision)
}

/// Records a delivery that made no ticket change (refused, unparseable) so it is visible;
/// the first decision recorded for a delivery stands.
fn apply_decision(
    tx: &TransactionalTree,
    d: &Decision,
    last_delivery: bool,
) -> crate::engine::ConflictableTransactionResult<(), StoreError> {
    let dkey = decision_key(d.inbound, &d.org);
    if tx.get(&dkey)?.is_none() {
        tx.insert(dkey, encode(d).map_err(Abort)?)?;
    }
    if last_delivery {
        finish_inbound(tx, d.inbound)?;
    }
    Ok(())
}

impl Store {
    /// Applies one delivery: dedup by Message-ID within the org, the ticket (new or
    /// updated), its event, the Message-ID index, the decision, and (for the last delivery)
    /// removal of the spool marker — all or nothing. Idempotent: a delivery already decided
    /// returns the earlier decision unchanged.
    pub fn commit_delivery(&self, c: &DeliveryCommit) -> Result<Decision, StoreError> {
        self.state
            .transaction(|tx| apply_delivery(tx, c))
            .map_err(StoreError::from)
    }

    /// Applies what the pipeline decided about several messages, in order, in ONE
    /// transaction: sled writes every transaction's batch to the log with a sync of its
    /// own, so committing messages together is what lets the pipeline keep up with the
    /// receiver (group commit, as the spool does). All or nothing; on an error nothing
    /// is applied and the caller may retry message by message. Returns the decisions.
    pub fn commit_pipeline(&self, writes: &[PipelineWrite]) -> Result<Vec<Decision>, StoreError> {
        self.state
            .transaction(|tx| {
                let mut decided = Vec::with_capacity(writes.len());
                for w in writes {
                    match w {
                        PipelineWrite::Delivery(c) => decided.push(apply_delivery(tx, c)?),
                        PipelineWrite::Decision {
                            decision,
                            last_delivery,
                        } => {
                            apply_decision(tx, decision, *last_delivery)?;
                            decided.push(decision.clone());
                        }
                    }
                }
                Ok(decided)
            })
            .map_err(StoreError::from)
    }

    /// What was decided about one delivery of an inbound message.
    pub fn decision(&self, inbound: u64, org: &str) -> Result<Option<Decision>, StoreError> {
        self.state
            .get(decision_key(inbound, org))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The decisions about mail whose sender was `from`, oldest first (a person's export).
    pub fn decisions_from(&self, from: &str) -> Result<Vec<Decision>, StoreError> {
        let mut out = Vec::new();
        for v in self.state.scan_prefix("decision/").values() {
            let d: Decision = decode(&v?)?;
            if d.from == from {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The decision log, newest first.
    pub fn decisions(&self, limit: usize) -> Result<Vec<Decision>, StoreError> {
        self.state
            .scan_prefix("decision/")
            .values()
            .rev()
            .take(limit)
            .map(|v| decode(&v?))
            .collect()
    }
}
