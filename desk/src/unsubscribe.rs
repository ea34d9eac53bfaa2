//! One-click unsubscribe (RFC 8058): the `List-Unsubscribe` link in automatic mail turns
//! off its recipient's automatic mail (a staff member's alerts, an end user's notices and
//! acknowledgements). A person's answers are not automatic and still arrive.

use crate::{Desk, DeskError, DeskResult};

/// The store secret the links are keyed with (the notifier makes them, the desk checks).
pub const UNSUBSCRIBE_SECRET: &str = "unsubscribe";

impl Desk {
    /// The address a link's token names, if the link is genuine (for its confirmation page).
    pub async fn unsubscribe_address(&self, token: String) -> DeskResult<String> {
        self.run(move |desk| desk.unsubscribed_address(&token))
            .await
    }

    /// Turns off the automatic mail of the person a link names; returns their address.
    pub async fn unsubscribe(&self, token: String) -> DeskResult<String> {
        self.run(move |desk| {
            let address = desk.unsubscribed_address(&token)?;
            match desk.store.staff(&address)? {
                Some(_) => desk.store.set_staff_alerts(&address, false)?,
                None => desk.store.set_contact_alerts(&address, false)?,
            }
            Ok(address)
        })
        .await
    }

    fn unsubscribed_address(&self, token: &str) -> DeskResult<String> {
        let secret = self.store.secret(UNSUBSCRIBE_SECRET)?;
        postdesk_threading::check_unsubscribe_token(&secret, token)
            .ok_or_else(|| DeskError::NotFound("This unsubscribe link is not valid.".into()))
    }
}
