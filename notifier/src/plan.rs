//! Who hears of what. For now: a new ticket opened by a person's mail is acknowledged to
//! its requester — never automatic mail (auto-replies, bulk, lists, bounces), never our own
//! addresses, and at most `hourly_cap` automatic mails per recipient per hour.

use crate::render::{acknowledgement, Acknowledgement};
use crate::NotifierError;
use postdesk_store::{Event, EventKind, OutboxItem, OutboxStatus, Store};
use time::OffsetDateTime;

pub(crate) struct Planner<'a> {
    pub store: &'a Store,
    pub secret: [u8; 32],
    pub hourly_cap: usize,
}

impl Planner<'_> {
    /// The mail one event causes.
    pub fn plan(
        &self,
        event: &Event,
        already: &[OutboxItem],
    ) -> Result<Vec<OutboxItem>, NotifierError> {
        if event.kind != EventKind::Created || event.automatic || event.inbound.is_none() {
            return Ok(Vec::new());
        }
        let Some(ticket) = self.store.ticket(event.ticket)? else {
            return Ok(Vec::new());
        };
        let Some(org) = self.store.org(&ticket.org)? else {
            return Ok(Vec::new());
        };
        let recipient = ticket.requester.clone();
        let own = self.store.org_for_address(&recipient)?.is_some();
        if ticket.automatic || own || !recipient.contains('@') {
            return Ok(Vec::new());
        }
        let now = OffsetDateTime::now_utc();
        let recent = self
            .store
            .automatic_mail_count(&recipient, now - time::Duration::hours(1))?
            + already.iter().filter(|i| i.recipient == recipient).count();
        if recent >= self.hourly_cap {
            tracing::warn!(%recipient, ticket = ticket.number, "hourly cap of automatic mail reached; no acknowledgement");
            return Ok(Vec::new());
        }
        let Some(org_address) = org.addresses.first() else {
            return Ok(Vec::new());
        };
        let token = postdesk_threading::make_reply_token(&self.secret, ticket.number, &recipient);
        let reply_to = match org_address.split_once('@') {
            Some((local, domain)) => format!("{local}+{token}@{domain}"),
            None => org_address.clone(),
        };
        let thread: Vec<String> = self
            .store
            .events_for(ticket.number)?
            .iter()
            .filter(|e| e.seq <= event.seq)
            .filter_map(|e| e.message_id.clone())
            .collect();
        let (message_id, mut raw) = acknowledgement(&Acknowledgement {
            number: ticket.number,
            event: event.seq,
            summary: &ticket.summary,
            org_name: &org.name,
            org_address,
            recipient: &recipient,
            reply_to: &reply_to,
            thread: &thread,
        })?;
        if let Some(key) = self.store.dkim_key(&org.slug)? {
            let domain = org_address.rsplit_once('@').map_or("", |(_, d)| d);
            raw = crate::sign(&raw, &key, domain)?;
        }
        Ok(vec![OutboxItem {
            key: format!("{}:{recipient}", event.seq),
            event: event.seq,
            ticket: ticket.number,
            org: org.slug.clone(),
            recipient,
            kind: "acknowledgement".into(),
            message_id,
            raw,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            created_at: now,
        }])
    }
}
