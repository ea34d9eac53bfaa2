//! RSET: abandon the current transaction, keep the greeting.

use super::session::Session;

impl Session {
    pub(super) fn rset(&mut self) {
        self.reset_transaction();
        self.reply("250 2.0.0 Reset");
    }
}
