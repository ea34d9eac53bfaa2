//! VRFY: answered without revealing whether an address exists (RFC 5321 section 3.5.3).

use super::session::Session;

impl Session {
    pub(super) fn vrfy(&mut self) {
        self.reply("252 2.1.5 Cannot verify addresses; send the message and it will be handled");
    }
}
