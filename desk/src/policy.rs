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

/// What an owner or admin may not do to a staff member, if anything: nobody deletes the
/// owner or themselves; only the owner hands ownership on (it moves, it is not shared),
/// and the owner's own role changes only that way.
pub fn staff_change_refused(
    actor: &Staff,
    target: &Staff,
    new_role: Option<Role>,
    delete: bool,
) -> Option<&'static str> {
    if !can_edit_settings(actor) {
        return Some("Only owners and admins manage employees.");
    }
    if delete {
        if target.role == Role::Owner {
            return Some(
                "The owner cannot be deleted; the owner can hand ownership to someone else first.",
            );
        }
        if target.email == actor.email {
            return Some("You cannot delete yourself.");
        }
        return None;
    }
    match new_role {
        Some(Role::Owner) if target.role != Role::Owner && actor.role != Role::Owner => {
            Some("Only the owner can hand ownership to someone else.")
        }
        Some(r) if target.role == Role::Owner && r != Role::Owner => {
            Some("The owner's role changes only when the owner hands ownership to someone else.")
        }
        _ => None,
    }
}
