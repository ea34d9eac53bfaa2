//! DATA: receive the message, check size, line length and the sender whitelist, hand it to the spool, and answer only once it is durable.

use super::session::{read_more, Conn, Next, Recipient, Session};
use super::Mode;
use crate::checks::{check_shape, from_address, whitelist_verdict, Verdict};
use postdesk_store::{Delivery, Envelope, RefusedDelivery, Source};
use smtp_proto::request::receiver::DataReceiver;

impl Session {
    pub(super) fn data_start(&mut self) -> Next {
        if self.mail_from.is_none() {
            self.reply("503 5.5.1 Need MAIL command first");
            return Next::Continue;
        }
        if self.recipients.is_empty() {
            self.reply("554 5.5.1 No valid recipients");
            return Next::Continue;
        }
        self.reply("354 Start mail input; end with <CRLF>.<CRLF>");
        Next::Data
    }

    /// Reads the message body after 354 and answers it; returns bytes read past its end
    /// (pipelined commands).
    pub(super) async fn receive_data(
        &mut self,
        conn: &mut impl Conn,
        leftover: Vec<u8>,
    ) -> std::io::Result<Vec<u8>> {
        let max = self.gateway.config.max_message_size;
        let mut receiver = DataReceiver::new();
        let mut message = Vec::with_capacity(64 * 1024);
        let mut too_big = false;
        let mut chunk = leftover;
        let mut buf = vec![0u8; 64 * 1024];
        let rest = loop {
            let mut iter = chunk.iter();
            let done = receiver.ingest(&mut iter, &mut message);
            if message.len() > max {
                // Keep reading to the end so the session stays in step, but store nothing.
                too_big = true;
                message.clear();
            }
            if done {
                break iter.as_slice().to_vec();
            }
            match read_more(self, conn, &mut buf).await? {
                Some(n) => chunk = buf[..n].to_vec(),
                None => {
                    self.reply(&format!(
                        "421 4.4.2 {} Connection lost or timed out during DATA; closing",
                        self.gateway.config.domain
                    ));
                    self.flush(conn).await?;
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "DATA not completed",
                    ));
                }
            }
        };
        if too_big {
            self.reply(&format!(
                "552 5.3.4 Message exceeds the maximum size of {max} bytes"
            ));
        } else {
            self.finish_message(message).await;
        }
        self.reset_transaction();
        Ok(rest)
    }

    async fn finish_message(&mut self, message: Vec<u8>) {
        if let Some(problem) = check_shape(&message, self.gateway.config.max_line_length) {
            self.reply(&format!("554 5.6.0 {problem}"));
            return;
        }
        let Some(from) = from_address(&message) else {
            self.reply("554 5.6.0 Message has no readable header section");
            return;
        };
        let verdicts: Vec<(Recipient, Verdict)> = self
            .recipients
            .clone()
            .into_iter()
            .map(|r| {
                let v = whitelist_verdict(&self.gateway.store, &r.org, &r.address, from.as_deref());
                (r, v)
            })
            .collect();
        let mut deliveries = Vec::new();
        let mut refused = Vec::new();
        for (r, v) in &verdicts {
            match v {
                Verdict::Accept => deliveries.push(Delivery {
                    org: r.org.clone(),
                    address: r.address.clone(),
                }),
                Verdict::Refuse(reason) => refused.push(RefusedDelivery {
                    org: r.org.clone(),
                    address: r.address.clone(),
                    reason: reason.clone(),
                }),
            }
        }
        if deliveries.is_empty() {
            for (_, v) in &verdicts {
                if let Verdict::Refuse(reason) = v {
                    self.reply(&format!("550 5.7.1 {reason}"));
                    if self.mode == Mode::Smtp {
                        break;
                    }
                }
            }
            return;
        }
        let envelope = Envelope {
            source: if self.mode == Mode::Lmtp {
                Source::Lmtp
            } else {
                Source::Smtp
            },
            peer: self.peer.to_string(),
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: self.mail_from.clone().unwrap_or_default(),
            deliveries,
            // LMTP answers refusals per recipient, so only SMTP needs them recorded.
            refused: if self.mode == Mode::Smtp {
                refused
            } else {
                Vec::new()
            },
            received_at: time::OffsetDateTime::now_utc(),
            mailbox: None,
        };
        let stored = self.gateway.spool.store(envelope, message).await;
        match (self.mode, stored) {
            (Mode::Smtp, Ok(id)) => self.reply(&format!("250 2.0.0 Message accepted as {id}")),
            (Mode::Smtp, Err(e)) => {
                tracing::error!(error = %e, "spool write failed");
                self.reply("451 4.3.0 Temporary storage failure; try again later");
            }
            (Mode::Lmtp, stored) => {
                for (r, v) in &verdicts {
                    match (v, &stored) {
                        (Verdict::Accept, Ok(id)) => self.reply(&format!(
                            "250 2.0.0 <{}> Message accepted as {id}",
                            r.address
                        )),
                        (Verdict::Accept, Err(_)) => self.reply(&format!(
                            "451 4.3.0 <{}> Temporary storage failure; try again later",
                            r.address
                        )),
                        (Verdict::Refuse(reason), _) => {
                            self.reply(&format!("550 5.7.1 <{}> {reason}", r.address))
                        }
                    }
                }
            }
        }
    }
}
