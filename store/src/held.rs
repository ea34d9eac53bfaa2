//! Mail held from non-participants (see `Event::held`): staff accept its sender as a CC of
//! the ticket, or open it as a ticket of its own; either is decided once.

use crate::codec::{decode, encode, num_key};
use crate::delivery::MAX_TICKET_CC;
use crate::engine::ConflictableTransactionError::Abort;
use crate::engine::{TransactionalTree, UnabortableTransactionError};
use crate::message_ids::{mid_entry, mid_key, mid_origin, mid_ticket, midby_key, moved_mid_entry};
use crate::tickets::{append_change, append_event, bump, new_ticket, record_activity, save_ticket};
use crate::{Change, Event, EventKind, HeldOutcome, Store, StoreError, Ticket, TicketType};
use time::OffsetDateTime;

/// What staff do with a held mail.
#[derive(Debug, Clone)]
pub enum HeldAction {
    /// Add the sender to the ticket's CC list: their mail becomes conversation from now on.
    Accept,
    /// Open a new ticket of the same organization with this mail as its request.
    OpenTicket {
        summary: String,
        ticket_type: TicketType,
    },
}

fn held_key(seq: u64) -> Vec<u8> {
    num_key("held/", seq)
}

impl Store {
    /// What was decided about the held mail of event `seq`, if anything yet.
    pub fn held_outcome(&self, seq: u64) -> Result<Option<HeldOutcome>, StoreError> {
        self.state
            .get(held_key(seq))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Applies staff member `by`'s decision about the held mail `seq` of `ticket`, once:
    /// a second decision, an event that is not a held mail of this ticket, or a sender who
    /// already takes part is refused and changes nothing.
    pub fn resolve_held(
        &self,
        ticket: u64,
        seq: u64,
        action: &HeldAction,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<HeldOutcome, StoreError> {
        let outcome = self
            .state
            .transaction(|tx| {
                let event: Event = tx
                    .get(num_key("ev/", seq))?
                    .map(|v| decode::<Event>(&v))
                    .transpose()
                    .map_err(Abort)?
                    .filter(|e| e.ticket == ticket && e.held)
                    .ok_or_else(|| {
                        Abort(StoreError::NotFound(format!(
                            "held mail {seq} on ticket {ticket}"
                        )))
                    })?;
                if let Some(done) = tx.get(held_key(seq))? {
                    let done: HeldOutcome = decode(&done).map_err(Abort)?;
                    return Err(Abort(StoreError::Invalid(match done {
                        HeldOutcome::Accepted { .. } => {
                            "this mail's sender was already accepted".into()
                        }
                        HeldOutcome::OpenedAsTicket { ticket, .. } => {
                            format!("this mail was already opened as ticket {ticket}")
                        }
                    })));
                }
                let raw = tx
                    .get(num_key("ticket/", ticket))?
                    .ok_or_else(|| Abort(StoreError::NotFound(format!("ticket {ticket}"))))?;
                let before: Ticket = decode(&raw).map_err(Abort)?;
                let outcome = match action {
                    HeldAction::Accept => {
                        let sender = &event.author;
                        if event.suspected_spoofing {
                            return Err(Abort(StoreError::Invalid(
                                "this mail may be forged: its sender cannot be accepted".into(),
                            )));
                        }
                        // A CC may see the ticket; whether staff may is the policy's to say.
                        if tx.get(format!("staff/{sender}").as_bytes())?.is_some() {
                            return Err(Abort(StoreError::Invalid(format!(
                                "{sender} is staff: staff are not copied, assign the ticket instead"
                            ))));
                        }
                        if *sender == before.requester || before.cc.contains(sender) {
                            return Err(Abort(StoreError::Invalid(format!(
                                "{sender} already takes part in ticket {ticket}"
                            ))));
                        }
                        if before.cc.len() >= MAX_TICKET_CC {
                            return Err(Abort(StoreError::Invalid(format!(
                                "ticket {ticket} already copies {MAX_TICKET_CC} addresses"
                            ))));
                        }
                        let mut after = before.clone();
                        let mut cc = before.cc.clone();
                        cc.push(sender.clone());
                        let base = Event::by(ticket, by, true, at);
                        append_change(tx, &mut after, &Change::Cc(cc), &base)?;
                        after.updated_at = at;
                        after.imported = false;
                        save_ticket(tx, Some(&before), &after)?;
                        HeldOutcome::Accepted {
                            by: by.to_string(),
                            at,
                        }
                    }
                    HeldAction::OpenTicket {
                        summary,
                        ticket_type,
                    } => {
                        let mut opened = Ticket {
                            automatic: event.automatic,
                            ..new_ticket(tx, &before.org, *ticket_type, summary, &event.author, at)?
                        };
                        let created = Event {
                            seq: bump(tx, "counter/event")?,
                            ticket: opened.number,
                            kind: EventKind::Created,
                            visibility: crate::Visibility::Public,
                            held: false,
                            at,
                            ..event.clone()
                        };
                        append_event(tx, &created)?;
                        record_activity(&mut opened, &created);
                        save_ticket(tx, None, &opened)?;
                        // Replies to the mail now thread into its own ticket.
                        if let Some(mid) = &event.message_id {
                            move_message_id(tx, &before, mid, &event, opened.number)?;
                        }
                        HeldOutcome::OpenedAsTicket {
                            ticket: opened.number,
                            by: by.to_string(),
                            at,
                        }
                    }
                };
                tx.insert(held_key(seq), encode(&outcome).map_err(Abort)?)?;
                Ok(outcome)
            })
            .map_err(StoreError::from)?;
        self.flush()?;
        Ok(outcome)
    }
}

/// Points what the held mail's Message-ID leads to at the ticket it was opened as, and
/// only that: the id's entry when it pointed at the held mail's ticket and its author owns
/// it (or nobody is known to), else that author's own key. Someone who sent a mail with
/// another person's id (copied on it, say) takes over neither its replies nor its retries.
fn move_message_id(
    tx: &TransactionalTree,
    held_in: &Ticket,
    mid: &str,
    event: &Event,
    opened: u64,
) -> Result<(), UnabortableTransactionError> {
    let key = mid_key(&held_in.org, mid);
    match tx.get(key.as_bytes())? {
        Some(entry)
            if mid_ticket(&entry) == Some(held_in.number)
                && mid_origin(&entry).is_none_or(|(_, owner)| owner == event.author) =>
        {
            tx.insert(key.as_bytes(), moved_mid_entry(&entry, opened))?;
        }
        Some(_) => {
            let by = midby_key(&held_in.org, mid, &event.author);
            if tx
                .get(by.as_bytes())?
                .is_some_and(|t| mid_ticket(&t) == Some(held_in.number))
            {
                tx.insert(by.as_bytes(), &opened.to_be_bytes())?;
            }
        }
        None => {
            let entry = mid_entry(opened, event.inbound.unwrap_or(0), &event.author);
            tx.insert(key.as_bytes(), entry)?;
        }
    }
    Ok(())
}
