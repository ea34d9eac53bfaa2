//! Test fixtures shared by the desk's unit tests: a plain open ticket, a staff member, and
//! a desk on a store in a temporary folder.

use postdesk_store::{Role, Staff, Ticket, TicketType};
use time::OffsetDateTime;

/// Ticket 1 of "acme", open, from `requester`, nobody assigned or copied.
pub(crate) fn ticket(requester: &str) -> Ticket {
    let at = OffsetDateTime::UNIX_EPOCH;
    Ticket::fresh(1, "acme", TicketType::Question, "s", requester, at)
}

pub(crate) fn staff(email: &str, name: &str, role: Role) -> Staff {
    Staff::new(email, name, role, OffsetDateTime::UNIX_EPOCH)
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
    desk_with_clock(name, std::sync::Arc::new(postdesk_store::SystemClock))
}

/// The same, on `clock`.
pub(crate) fn desk_with_clock(
    name: &str,
    clock: std::sync::Arc<dyn postdesk_store::Clock>,
) -> (crate::Desk, Scratch) {
    let dir = std::env::temp_dir().join(format!("postdesk-desk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = postdesk_store::testing::open(&dir).expect("open");
    (crate::Desk::new(store, clock), Scratch(dir))
}

/// A clock a test sets by hand.
#[derive(Default)]
pub(crate) struct HandClock(std::sync::Mutex<Option<OffsetDateTime>>);

impl HandClock {
    pub(crate) fn set(&self, at: OffsetDateTime) {
        if let Ok(mut now) = self.0.lock() {
            *now = Some(at);
        }
    }
}

impl postdesk_store::Clock for HandClock {
    fn now(&self) -> OffsetDateTime {
        self.0
            .lock()
            .ok()
            .and_then(|now| *now)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}
