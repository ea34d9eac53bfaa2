//! The mail logs, which show every organization's mail and so are for owners, admins and
//! managers only: the inbound decisions, the outbox, the mailbox sources, and an original
//! found by its Message-ID.

use crate::{policy, Desk, DeskError, DeskResult};
use postdesk_store::{
    normalize_message_id, Decision, MailboxCursor, MailboxStatus, OutboxItem, Staff,
};

/// A mailbox source read over IMAP, with how far it has read.
pub struct Source {
    pub status: MailboxStatus,
    pub cursor: MailboxCursor,
    /// Distinct messages imported, and set aside (refused).
    pub imported: u64,
    pub refused: u64,
}

fn require_mail_logs(staff: &Staff, what: &str) -> DeskResult<()> {
    if policy::can_view_mail_logs(staff) {
        Ok(())
    } else {
        Err(DeskError::Forbidden(format!(
            "{what} is for owners, admins and managers"
        )))
    }
}

impl Desk {
    /// The newest `limit` inbound decisions.
    pub async fn decisions(&self, staff: Staff, limit: usize) -> DeskResult<Vec<Decision>> {
        require_mail_logs(&staff, "the inbound log")?;
        self.run(move |desk| Ok(desk.store.decisions(limit)?)).await
    }

    /// The newest `limit` outbound mails with their state.
    pub async fn outbox(&self, staff: Staff, limit: usize) -> DeskResult<Vec<OutboxItem>> {
        require_mail_logs(&staff, "the outbox")?;
        self.run(move |desk| Ok(desk.store.outbox(limit)?)).await
    }

    /// Every mailbox source.
    pub async fn sources(&self, staff: Staff) -> DeskResult<Vec<Source>> {
        require_mail_logs(&staff, "the mailbox sources")?;
        self.run(move |desk| {
            let mut out = Vec::new();
            for status in desk.store.mailbox_statuses()? {
                let cursor = desk.store.mailbox_cursor(&status.source)?;
                let (imported, refused) = desk.store.mailbox_counts(&status.source)?;
                out.push(Source {
                    status,
                    cursor,
                    imported,
                    refused,
                });
            }
            Ok(out)
        })
        .await
    }

    /// A stored original by its Message-ID. Each organization keeps its own Message-IDs,
    /// so it is looked for through the tickets `staff` may see, and what comes back is the
    /// original of that ticket's own entry with this Message-ID: another organization's
    /// mail with the same id stays hidden. Mail in no ticket (refused, a duplicate) is for
    /// those who see the mail logs.
    pub async fn original_by_message_id(
        &self,
        staff: Staff,
        message_id: String,
    ) -> DeskResult<Vec<u8>> {
        self.run(move |desk| {
            let store = &desk.store;
            let missing = || DeskError::NotFound(format!("no stored message {message_id}"));
            let wanted = normalize_message_id(&message_id);
            let orgs = store.orgs()?;
            for org in &orgs {
                let Some(ticket) = store
                    .ticket_for_message_id(&org.slug, &wanted)?
                    .and_then(|n| store.ticket(n).ok().flatten())
                    .filter(|t| policy::can_view_ticket(&staff, t))
                else {
                    continue;
                };
                let inbound = store
                    .events_for(ticket.number)?
                    .into_iter()
                    .find(|e| e.message_id.as_deref() == Some(wanted.as_str()))
                    .and_then(|e| e.inbound);
                if let Some(inbound) = inbound {
                    return store.raw_message(inbound)?.ok_or_else(missing);
                }
            }
            if policy::can_view_mail_logs(&staff) {
                for org in &orgs {
                    if let Some(inbound) = store.inbound_for_message_id(&org.slug, &wanted)? {
                        return store.raw_message(inbound)?.ok_or_else(missing);
                    }
                }
            }
            Err(missing())
        })
        .await
    }
}
