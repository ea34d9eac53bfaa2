//! RCPT TO: only organization addresses (or their plus forms) are accepted, so nothing is
//! taken in that would later bounce.

use super::data::count;
use super::session::{Recipient, Session};
use smtp_proto::RcptTo;

impl Session {
    pub(super) fn rcpt(&mut self, to: RcptTo<String>) {
        if self.mail_from.is_none() {
            self.reply("503 5.5.1 Need MAIL command first");
            return;
        }
        if self.recipients.len() >= self.gateway.config.max_recipients {
            count("deferred", "too_many_recipients");
            self.reply(&format!(
                "452 4.5.3 Too many recipients; at most {} per message",
                self.gateway.config.max_recipients
            ));
            return;
        }
        let address = to.address.trim().to_ascii_lowercase();
        if address.chars().any(|c| c.is_control() || c.is_whitespace()) || !address.contains('@') {
            self.reply("501 5.1.3 Bad recipient address syntax");
            return;
        }
        match self.gateway.store.org_for_address(&address) {
            Ok(Some(org)) if org.deactivated_at.is_some() => {
                count("refused", "organization_deactivated");
                self.reply(&format!(
                    "550 5.2.1 <{address}>: this organization no longer takes mail"
                ))
            }
            Ok(Some(org)) => {
                let sender = self.mail_from.as_deref().unwrap_or_default();
                if !sender.is_empty()
                    && matches!(self.gateway.store.is_blocked(&org.slug, sender), Ok(true))
                {
                    // Refused before DATA: the organization marked this sender's mail as spam.
                    count("refused", "blocked_sender");
                    self.reply(&format!(
                        "550 5.7.1 <{sender}> is blocked from writing to <{address}>"
                    ));
                    return;
                }
                if self.recipients.iter().any(|r| r.address == address) {
                    self.reply("250 2.1.5 Recipient OK (duplicate ignored)");
                    return;
                }
                self.recipients.push(Recipient { address, org });
                self.reply("250 2.1.5 Recipient OK");
            }
            Ok(None) => {
                count("refused", "no_such_mailbox");
                self.reply(&format!("550 5.1.1 <{address}>: no such mailbox here"))
            }
            Err(e) => {
                tracing::error!(error = %e, "recipient lookup failed");
                count("deferred", "lookup_failure");
                self.reply("451 4.3.0 Temporary lookup failure; try again later");
            }
        }
    }
}
