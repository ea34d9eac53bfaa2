//! What the end-user portal reads and sets for its user: the organization's portal, the
//! user's own tickets (only those they requested in that organization), one of them with
//! who handles it, and their choice about automatic mail.

use crate::{Desk, DeskError, DeskResult};
use postdesk_store::{Event, Org, Ticket, Visibility};

/// A portal user's own ticket as the portal shows it.
pub struct RequesterTicket {
    pub ticket: Ticket,
    /// The public conversation only: internal notes and held mail never reach the portal.
    pub events: Vec<Event>,
    /// The name of the staff member handling it, or that nobody does yet.
    pub handler: String,
}

impl Desk {
    /// The portal of organization `slug`.
    pub async fn portal(&self, slug: String) -> DeskResult<Org> {
        self.run(move |desk| desk.open_portal(&slug)).await
    }

    /// Organization `slug` as its portal sees it: one deactivated has no portal (no page,
    /// no request, no reply, no sign-in).
    pub(crate) fn open_portal(&self, slug: &str) -> DeskResult<Org> {
        self.store
            .org(slug)?
            .filter(|o| o.deactivated_at.is_none())
            .ok_or_else(|| DeskError::NotFound("There is no such support portal.".into()))
    }

    /// The tickets `email` requested in `org`, newest first, and whether they get
    /// automatic mail.
    pub async fn requester_tickets(
        &self,
        org: String,
        email: String,
    ) -> DeskResult<(Vec<Ticket>, bool)> {
        self.run(move |desk| {
            let mut tickets = desk.store.tickets_of(&email, false, usize::MAX)?;
            tickets.retain(|t| t.org == org);
            Ok((tickets, desk.store.contact_alerts(&email)?))
        })
        .await
    }

    /// Ticket `number`, if `email` requested it in `org`: anyone else's is not found.
    pub async fn requester_ticket(
        &self,
        org: String,
        email: String,
        number: u64,
    ) -> DeskResult<RequesterTicket> {
        self.run(move |desk| {
            let ticket = desk
                .store
                .ticket(number)?
                .filter(|t| t.org == org && t.requester == email)
                .ok_or_else(|| DeskError::NotFound(format!("Ticket {number} not found.")))?;
            let handler = match &ticket.assignee {
                Some(a) => desk.store.staff(a)?.map_or_else(|| a.clone(), |s| s.name),
                None => "not assigned yet".to_string(),
            };
            let events = desk
                .store
                .events_for(number)?
                .into_iter()
                .filter(|e| e.visibility == Visibility::Public && !e.held)
                .collect();
            Ok(RequesterTicket {
                ticket,
                events,
                handler,
            })
        })
        .await
    }

    /// Whether `email` gets automatic mail (confirmations of new requests).
    pub async fn set_automatic_mail(&self, email: String, on: bool) -> DeskResult<()> {
        self.run(move |desk| Ok(desk.store.set_contact_alerts(&email, on)?))
            .await
    }
}
