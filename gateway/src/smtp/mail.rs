//! MAIL FROM: start a transaction, after the greeting, within size and rate limits.

use super::data::count;
use super::session::Session;
use smtp_proto::MailFrom;

impl Session {
    pub(super) fn mail(&mut self, from: MailFrom<String>) {
        if self.helo.is_none() {
            let verb = if self.mode == super::Mode::Lmtp {
                "LHLO"
            } else {
                "EHLO/HELO"
            };
            self.reply(&format!("503 5.5.1 Send {verb} first"));
            return;
        }
        if self.mail_from.is_some() {
            self.reply("503 5.5.1 Sender already given; use RSET to start over");
            return;
        }
        let max = self.gateway.config.max_message_size;
        if from.size > max {
            count("refused", "too_large");
            self.reply(&format!(
                "552 5.3.4 Message size {} exceeds the maximum of {max} bytes",
                from.size
            ));
            return;
        }
        if !self.gateway.limits.allow_message(self.peer.ip()) {
            count("deferred", "rate_limited");
            self.reply("451 4.7.1 Too many messages from your address; try again later");
            return;
        }
        let address = from.address.trim().to_string();
        if address.chars().any(|c| c.is_control()) {
            self.reply("501 5.1.7 Bad sender address syntax");
            return;
        }
        if !self.gateway.limits.allow_sender(&address) {
            count("deferred", "rate_limited");
            self.reply("451 4.7.1 Too many messages from this sender; try again later");
            return;
        }
        self.mail_from = Some(address);
        self.reply("250 2.1.0 Sender OK");
    }
}
