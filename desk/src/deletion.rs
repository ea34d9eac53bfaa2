//! Deleting tickets (Owner, Admin, Manager), optionally as spam, which blocks the sender
//! for the organization; and the blocklist those leave, seen and trimmed in settings.

use crate::{policy, Desk, DeskError, DeskResult};
use postdesk_store::{blocked_form, BlockedSender, Deleted, Staff, StoreError};

impl Desk {
    /// Deletes ticket `number`; `spam` also blocks its requester for the organization.
    /// Roles that may not delete are refused before anything about the ticket is looked
    /// at, so the answer tells them nothing.
    pub async fn delete_ticket(
        &self,
        staff: Staff,
        number: u64,
        spam: bool,
    ) -> DeskResult<Deleted> {
        if !policy::can_delete_tickets(&staff) {
            return Err(DeskError::Forbidden(
                "Only owners, admins and managers delete tickets.".into(),
            ));
        }
        self.run(move |desk| {
            let ticket = desk.visible_ticket(&staff, number)?;
            let block = if spam {
                let sender = ticket.requester.clone();
                // A block covers every spelling of the mailbox (`+tag` and all): checked
                // in that form, so no spelling of a staff address blocks its owner.
                let mailbox = blocked_form(&sender);
                if desk.store.staff(&sender)?.is_some() || desk.store.staff(&mailbox)?.is_some() {
                    return Err(DeskError::Invalid(format!(
                        "{sender} is a staff member's address: delete the ticket without \
                         marking it as spam"
                    )));
                }
                if desk.store.org_for_address(&mailbox)?.is_some() {
                    return Err(DeskError::Invalid(format!(
                        "{sender} is one of Postdesk's own addresses and cannot be blocked"
                    )));
                }
                Some(sender)
            } else {
                None
            };
            desk.store
                .delete_ticket(number, &staff.email, desk.now(), block.as_deref())
                .map_err(|e| match e {
                    StoreError::NotFound(_) => {
                        DeskError::NotFound(format!("ticket {number} not found"))
                    }
                    other => other.into(),
                })
        })
        .await
    }

    /// The senders organization `org` refuses.
    pub async fn blocked_senders(
        &self,
        staff: Staff,
        org: String,
    ) -> DeskResult<Vec<BlockedSender>> {
        policy::require_settings_view(&staff)?;
        self.run(move |desk| {
            desk.store
                .org(&org)?
                .ok_or_else(|| DeskError::NotFound(format!("organization {org} not found")))?;
            Ok(desk.store.blocked_senders(&org)?)
        })
        .await
    }

    /// Takes `sender` off `org`'s blocklist: its mail is taken again.
    pub async fn unblock_sender(
        &self,
        staff: Staff,
        org: String,
        sender: String,
    ) -> DeskResult<()> {
        policy::require_settings_edit(&staff)?;
        // Matched against what is on the list, however it was spelled when blocked (a
        // requester need not be an address this desk would accept as typed).
        let sender = sender.trim().to_string();
        if sender.is_empty() || sender.len() > 320 || sender.chars().any(char::is_control) {
            return Err(DeskError::Invalid("give the blocked address".into()));
        }
        self.run(move |desk| {
            if desk.store.unblock_sender(&org, &sender)? {
                Ok(())
            } else {
                Err(DeskError::NotFound(format!(
                    "{sender} is not blocked in {org}"
                )))
            }
        })
        .await
    }
}
