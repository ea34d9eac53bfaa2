//! The store as threading sees it while a batch of planned messages is not yet committed:
//! an answer the batch may change is noted, so the message waits for the commit.

use postdesk_store::{normalize_message_id, Store, Ticket};
use postdesk_threading::TicketLookup;
use std::cell::Cell;
use std::collections::HashSet;

/// What the uncommitted batch touches: tickets it changes, Message-IDs it adds, whether
/// it opens tickets.
#[derive(Default, Clone)]
pub(super) struct BatchView {
    /// (organization, normalized Message-ID) of planned deliveries.
    pub message_ids: HashSet<(String, String)>,
    /// Existing tickets planned deliveries change.
    pub tickets: HashSet<u64>,
    pub opens_tickets: bool,
}

/// The store as threading sees it, noting when an answer may be changed by a planned,
/// uncommitted message of the batch.
pub(super) struct BatchLookup<'a> {
    pub store: &'a Store,
    pub view: &'a BatchView,
    pub read_batch: Cell<bool>,
}

impl BatchLookup<'_> {
    /// A Message-ID the uncommitted batch adds: the answer about it may change.
    fn note_batch_id(&self, org: &str, message_id: &str) {
        if self
            .view
            .message_ids
            .contains(&(org.to_string(), normalize_message_id(message_id)))
        {
            self.read_batch.set(true);
        }
    }

    pub fn ticket(&self, number: u64) -> Option<Ticket> {
        if self.view.tickets.contains(&number) {
            self.read_batch.set(true);
        }
        let ticket = self.store.ticket(number).ok().flatten();
        if ticket.is_none() && self.view.opens_tickets {
            self.read_batch.set(true);
        }
        ticket
    }
}

impl TicketLookup for BatchLookup<'_> {
    fn ticket_for_message_id(&self, org: &str, message_id: &str) -> Option<u64> {
        self.note_batch_id(org, message_id);
        self.store
            .ticket_for_message_id(org, message_id)
            .ok()
            .flatten()
    }
    fn ticket_for_reference(
        &self,
        org: &str,
        message_id: &str,
        sender: &str,
    ) -> Option<(u64, bool)> {
        self.note_batch_id(org, message_id);
        self.store
            .ticket_for_reference(org, message_id, sender)
            .ok()
            .flatten()
    }
    fn ticket_org(&self, ticket: u64) -> Option<String> {
        self.ticket(ticket).map(|t| t.org)
    }
    /// For a `[#N]` tag: the requester, a CC, or a staff address (whose proof, or its
    /// absence, is looked at next).
    fn is_participant(&self, ticket: u64, address: &str) -> bool {
        self.ticket(ticket)
            .is_some_and(|t| t.requester == address || t.cc.iter().any(|p| p == address))
            || self.store.staff(address).ok().flatten().is_some()
    }
}
