//! STARTTLS: offered only when a certificate is configured and TLS is not yet active.

use super::session::{Next, Session};

impl Session {
    pub(super) fn starttls(&mut self) -> Next {
        if self.tls_active {
            self.reply("503 5.5.1 TLS is already active");
            return Next::Continue;
        }
        if self.gateway.tls.is_none() {
            self.reply("454 4.7.0 TLS not available");
            return Next::Continue;
        }
        self.reply("220 2.0.0 Ready to start TLS");
        Next::StartTls
    }
}
