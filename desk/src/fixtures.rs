//! Test fixtures shared by the desk's unit tests: a plain open ticket, a staff member, and
//! a desk on a store in a temporary folder.

use postdesk_store::{Priority, Role, Staff, Status, Ticket, TicketType};
use time::OffsetDateTime;

/// Ticket 1 of "acme", open, from `requester`, nobody assigned or copied.
pub(crate) fn ticket(requester: &str) -> Ticket {
    let at = OffsetDateTime::UNIX_EPOCH;
    Ticket {
        number: 1,
        org: "acme".into(),
        ticket_type: TicketType::Question,
        status: Status::Open,
        summary: "s".into(),
        requester: requester.into(),
        assignee: None,
        cc: vec![],
        participants: vec![],
        automatic: false,
        priority: Priority::Normal,
        due: None,
        category: None,
        followers: vec![],
        created_by: None,
        closed_at: None,
        created_at: at,
        updated_at: at,
    }
}

pub(crate) fn staff(email: &str, name: &str, role: Role) -> Staff {
    Staff {
        email: email.into(),
        name: name.into(),
        role,
        alerts: true,
        hourly_rate_cents: 0,
        created_at: OffsetDateTime::UNIX_EPOCH,
    }
}

/// A temporary data folder, removed when dropped.
pub(crate) struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A desk on a fresh store named after the test (`name`) and this process.
pub(crate) fn desk(name: &str) -> (crate::Desk, Scratch) {
    let dir = std::env::temp_dir().join(format!("postdesk-desk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = postdesk_store::Store::open(&dir).expect("open");
    let desk = crate::Desk::new(store, std::sync::Arc::new(postdesk_store::SystemClock));
    (desk, Scratch(dir))
}
