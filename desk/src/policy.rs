//! The one place that decides who may see and do what: every page, API call, staff mail
//! command and outbound alert asks it.

use crate::{DeskError, DeskResult};
use postdesk_store::{Role, Staff, Ticket};

/// A `require_*` step: `Ok` when `yes`, else refused saying `why`.
fn allowed(yes: bool, why: &str) -> DeskResult<()> {
    if yes {
        Ok(())
    } else {
        Err(DeskError::Forbidden(why.into()))
    }
}

/// Owner, Admin and Manager see every ticket; a Tech only those they raised (as requester,
/// or opened for someone else), are assigned to, or are copied on.
pub fn can_view_ticket(staff: &Staff, ticket: &Ticket) -> bool {
    match staff.role {
        Role::Owner | Role::Admin | Role::Manager => true,
        Role::Tech => {
            ticket.requester == staff.email
                || ticket.created_by.as_deref() == Some(staff.email.as_str())
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

/// Deleting a ticket (and marking it as spam) is for those who see every ticket; a Tech
/// may not, not even one they raised.
pub fn can_delete_tickets(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin | Role::Manager)
}

/// Reports and exports cover every ticket and what work cost: owners, admins and
/// managers, never Techs.
pub fn can_see_reports(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin | Role::Manager)
}

/// [`can_see_reports`] as a desk query's first step.
pub(crate) fn require_reports(staff: &Staff) -> DeskResult<()> {
    allowed(
        can_see_reports(staff),
        "Reports and exports are for owners, admins and managers.",
    )
}

/// The audit log (who changed what, exported, deleted, signed in) is the owner's.
pub(crate) fn require_audit_reader(staff: &Staff) -> DeskResult<()> {
    allowed(staff.role == Role::Owner, "The audit log is for the owner.")
}

/// Deactivating an organization leads to deleting its data: the owner's alone.
pub fn can_deactivate_orgs(staff: &Staff) -> bool {
    staff.role == Role::Owner
}

/// [`can_deactivate_orgs`] as a desk command's first step.
pub(crate) fn require_org_deactivation(staff: &Staff) -> DeskResult<()> {
    allowed(
        can_deactivate_orgs(staff),
        "Only the owner deactivates or reactivates an organization.",
    )
}

/// A person's data (its export, its erasure) is for owners and admins.
pub fn can_handle_personal_data(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin)
}

/// [`can_handle_personal_data`] as a desk command's first step.
pub(crate) fn require_personal_data(staff: &Staff) -> DeskResult<()> {
    allowed(
        can_handle_personal_data(staff),
        "A person's data is for owners and admins.",
    )
}

/// Settings pages: owners and admins change them; managers may look.
pub fn can_view_settings(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin | Role::Manager)
}

pub fn can_edit_settings(staff: &Staff) -> bool {
    matches!(staff.role, Role::Owner | Role::Admin)
}

/// [`can_view_settings`] as a desk command's first step.
pub(crate) fn require_settings_view(staff: &Staff) -> DeskResult<()> {
    allowed(
        can_view_settings(staff),
        "Settings are for owners, admins and managers.",
    )
}

/// [`can_edit_settings`] as a desk command's first step (and an edge's, before costly
/// work such as making a key).
pub fn require_settings_edit(staff: &Staff) -> DeskResult<()> {
    allowed(
        can_edit_settings(staff),
        "Only owners and admins change settings.",
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(email: &str, role: Role) -> Staff {
        crate::fixtures::staff(email, email, role)
    }

    fn ticket() -> Ticket {
        Ticket {
            assignee: Some("alex@ops.test".into()),
            cc: vec!["cc@ops.test".into()],
            participants: vec!["seen@ops.test".into()],
            followers: vec!["follower@ops.test".into()],
            ..crate::fixtures::ticket("carol@customer.test")
        }
    }

    #[test]
    fn only_those_who_see_every_ticket_delete_them() {
        for role in [Role::Owner, Role::Admin, Role::Manager] {
            assert!(can_delete_tickets(&staff("x@ops.test", role)));
        }
        assert!(!can_delete_tickets(&staff("alex@ops.test", Role::Tech)));
    }

    #[test]
    fn techs_see_what_they_raised_hold_or_are_copied_on() {
        let t = ticket();
        for role in [Role::Owner, Role::Admin, Role::Manager] {
            assert!(can_view_ticket(&staff("x@ops.test", role), &t));
        }
        assert!(can_view_ticket(&staff("alex@ops.test", Role::Tech), &t));
        assert!(can_view_ticket(&staff("cc@ops.test", Role::Tech), &t));
        let raised = Ticket {
            requester: "mia@ops.test".into(),
            ..ticket()
        };
        assert!(can_view_ticket(&staff("mia@ops.test", Role::Tech), &raised));
        // Opened for a customer: the contact changes, the creator keeps seeing it.
        let opened_for = Ticket {
            created_by: Some("mia@ops.test".into()),
            ..ticket()
        };
        assert!(can_view_ticket(
            &staff("mia@ops.test", Role::Tech),
            &opened_for
        ));
        // Following, having once written, or being someone else: not enough.
        for who in ["follower@ops.test", "seen@ops.test", "other@ops.test"] {
            assert!(!can_view_ticket(&staff(who, Role::Tech), &t), "{who}");
        }
    }

    #[test]
    fn logs_settings_and_reply_addresses_are_not_for_techs() {
        let tech = staff("t@ops.test", Role::Tech);
        let manager = staff("m@ops.test", Role::Manager);
        assert!(!can_view_mail_logs(&tech) && can_view_mail_logs(&manager));
        assert!(!can_issue_reply_address(&tech) && can_issue_reply_address(&manager));
        assert!(can_view_settings(&manager) && !can_edit_settings(&manager));
        assert!(can_edit_settings(&staff("a@ops.test", Role::Admin)));
    }

    #[test]
    fn the_owner_and_oneself_are_not_deleted() {
        let owner = staff("o@ops.test", Role::Owner);
        let admin = staff("a@ops.test", Role::Admin);
        let tech = staff("t@ops.test", Role::Tech);
        assert!(staff_change_refused(&admin, &owner, None, true).is_some());
        assert!(staff_change_refused(&admin, &admin, None, true).is_some());
        assert!(staff_change_refused(&admin, &tech, None, true).is_none());
        assert!(staff_change_refused(&tech, &tech, Some(Role::Admin), false).is_some());
        assert!(staff_change_refused(&admin, &tech, Some(Role::Owner), false).is_some());
        assert!(staff_change_refused(&owner, &tech, Some(Role::Owner), false).is_none());
        assert!(staff_change_refused(&owner, &owner, Some(Role::Admin), false).is_some());
    }
}
