//! EHLO, HELO and LHLO: greet the client and announce the extensions.

use super::session::Session;
use super::Mode;

impl Session {
    pub(super) fn ehlo(&mut self, host: String, plain_helo: bool) {
        if self.mode == Mode::Lmtp {
            self.reply("500 5.5.1 This is an LMTP server; use LHLO");
            return;
        }
        self.greet(host, plain_helo);
    }

    pub(super) fn lhlo(&mut self, host: String) {
        if self.mode == Mode::Smtp {
            self.reply("500 5.5.1 This is an SMTP server; use EHLO or HELO");
            return;
        }
        self.greet(host, false);
    }

    fn greet(&mut self, host: String, plain_helo: bool) {
        if host.trim().is_empty() {
            self.reply("501 5.5.4 Syntax: EHLO hostname");
            return;
        }
        self.reset_transaction();
        self.helo = Some(host);
        let domain = self.gateway.config.domain.clone();
        if plain_helo {
            self.reply(&format!("250 {domain} Hello {}", self.peer.ip()));
            return;
        }
        let mut lines = vec![
            format!("{domain} Hello {}", self.peer.ip()),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.gateway.config.max_message_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        if self.gateway.tls.is_some() && !self.tls_active {
            lines.push("STARTTLS".to_string());
        }
        let last = lines.len() - 1;
        for (i, l) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.reply(&format!("250{sep}{l}"));
        }
    }
}
