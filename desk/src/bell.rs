//! The notification bell: opening an entry marks it read and tells which ticket it is about.

use crate::{Desk, DeskError, DeskResult};
use postdesk_store::Staff;

impl Desk {
    /// Marks `staff`'s bell entry for event `event` read; returns its ticket.
    pub async fn open_bell_item(&self, staff: Staff, event: u64) -> DeskResult<u64> {
        self.run(move |desk| {
            desk.store
                .open_bell_item(&staff.email, event)?
                .map(|item| item.ticket)
                .ok_or_else(|| DeskError::NotFound("No such notification.".into()))
        })
        .await
    }
}
