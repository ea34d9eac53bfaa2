//! The one place that decides who may see and do what; every route asks it.

use postdesk_store::{Role, Staff, Ticket};

/// Owner, Admin and Manager see every ticket; a Tech only those they raised, are assigned
/// to, or are copied on.
pub fn can_view_ticket(staff: &Staff, ticket: &Ticket) -> bool {
    match staff.role {
        Role::Owner | Role::Admin | Role::Manager => true,
        Role::Tech => {
            ticket.requester == staff.email
                || ticket.assignee.as_deref() == Some(staff.email.as_str())
                || ticket.cc.contains(&staff.email)
        }
    }
}

/// The inbound decision log, the outbox and the mailbox sources show mail of every
/// organization: not for Techs.
pub fn can_view_mail_logs(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin | Role::Manager)
}

/// Signed reply addresses let their holder write into a ticket as themselves: only staff
/// who see every ticket may hand them out.
pub fn can_issue_reply_address(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin | Role::Manager)
}

/// Settings pages: owners and admins change them; managers may look.
pub fn can_view_settings(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin | Role::Manager)
}

pub fn can_edit_settings(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin)
}
