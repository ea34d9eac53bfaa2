//! DATA: receive the message (within the size limit, the data deadline and the shared
//! data buffer), check line length and the sender whitelist, hand it to the spool, and
//! answer only once it is durable.

use super::session::{read_within, Conn, Next, Read, Recipient, Session};
use super::Mode;
use crate::checks::{check_shape, from_address, whitelist_verdict, Verdict};
use crate::limits::BufferGrant;
use postdesk_store::{Delivery, Envelope, RefusedDelivery, Source};
use smtp_proto::request::receiver::DataReceiver;
use tokio::time::Instant;

/// A message's first buffer: most mail fits it whole.
const FIRST_BUFFER: usize = 64 * 1024;

/// A message being received: its bytes, so far as they are kept, and the budget they hold.
struct Incoming<'a> {
    receiver: DataReceiver,
    message: Vec<u8>,
    /// Always covers `message`'s capacity while the message is kept.
    grant: BufferGrant<'a>,
    /// Message bytes received (dot-unstuffed), kept or not.
    size: usize,
    max: usize,
    too_big: bool,
    /// The shared data buffer had no room for the message.
    no_room: bool,
}

impl Incoming<'_> {
    /// Takes in `chunk`; at the end of the data, returns how much of `chunk` it used.
    fn take(&mut self, chunk: &[u8]) -> Option<usize> {
        let keeping = !self.too_big && !self.no_room;
        let needed = self.message.len() + chunk.len();
        if keeping && needed > self.message.capacity() {
            // Doubling, within the size limit; the unstuffed data is never longer than
            // what arrived, so the buffer never grows behind the grant's back.
            let capacity = (self.message.capacity() * 2)
                .max(FIRST_BUFFER)
                .min(self.max)
                .max(needed);
            if self.grant.grow_to(capacity) {
                self.message.reserve_exact(capacity - self.message.len());
            } else {
                self.no_room = true;
                self.drop_message();
            }
        }
        let before = self.message.len();
        let mut iter = chunk.iter();
        let done = self.receiver.ingest(&mut iter, &mut self.message);
        self.size += self.message.len() - before;
        if self.size > self.max && !self.too_big {
            self.too_big = true;
            self.drop_message();
        }
        if self.too_big || self.no_room {
            // Not kept: the buffer holds one chunk at most, outside the budget.
            self.message.clear();
        }
        done.then(|| chunk.len() - iter.as_slice().len())
    }

    fn drop_message(&mut self) {
        self.message = Vec::new();
        self.grant.release();
    }
}

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
    /// (pipelined commands). The message is kept only while it fits `max_message_size`
    /// and the sessions' shared data buffer; otherwise it is read to its end and dropped
    /// (552 permanent, 452 temporary), so the session stays in step. A DATA still
    /// unfinished at the data deadline ends the session with 421.
    pub(super) async fn receive_data(
        &mut self,
        conn: &mut impl Conn,
        leftover: Vec<u8>,
        buf: &mut [u8],
    ) -> std::io::Result<Vec<u8>> {
        let gateway = self.gateway.clone();
        let config = &gateway.config;
        let deadline = Instant::now() + config.data_deadline;
        let mut incoming = Incoming {
            receiver: DataReceiver::new(),
            message: Vec::new(),
            grant: gateway.data_budget.grant(),
            size: 0,
            max: config.max_message_size,
            too_big: false,
            no_room: false,
        };
        let rest = match incoming.take(&leftover) {
            Some(end) => leftover[end..].to_vec(),
            None => loop {
                let n = match read_within(self, conn, buf, config.data_timeout, Some(deadline))
                    .await?
                {
                    Read::Bytes(n) => n,
                    ended => {
                        let why = match ended {
                            Read::Deadline => format!(
                                "DATA not completed within {} seconds",
                                config.data_deadline.as_secs()
                            ),
                            _ => "Connection lost or timed out during DATA".into(),
                        };
                        count("deferred", "data_timeout");
                        self.reply(&format!("421 4.4.2 {} {why}; closing", config.domain));
                        self.flush(conn).await?;
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "DATA not completed",
                        ));
                    }
                };
                if let Some(end) = incoming.take(&buf[..n]) {
                    break buf[end..n].to_vec();
                }
            },
        };
        if incoming.too_big {
            count("refused", "too_large");
            self.reply(&format!(
                "552 5.3.4 Message exceeds the maximum size of {} bytes",
                config.max_message_size
            ));
        } else if incoming.no_room {
            tracing::warn!(peer = %self.peer, "data buffer full: message deferred with 452");
            count("deferred", "buffer_full");
            self.reply("452 4.3.1 Insufficient system storage; try again later");
        } else {
            let Incoming { message, grant, .. } = incoming;
            self.finish_message(message).await;
            // The buffer is given back only once the message is stored or refused.
            drop(grant);
        }
        self.reset_transaction();
        Ok(rest)
    }

    async fn finish_message(&mut self, message: Vec<u8>) {
        if let Some(problem) = check_shape(&message, self.gateway.config.max_line_length) {
            count("refused", "malformed");
            self.reply(&format!("554 5.6.0 {problem}"));
            return;
        }
        let Some(from) = from_address(&message) else {
            count("refused", "malformed");
            self.reply("554 5.6.0 Message has no readable header section");
            return;
        };
        // Taken, not copied: the transaction is reset after this message either way.
        let verdicts: Vec<(Recipient, Verdict)> = std::mem::take(&mut self.recipients)
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
                    org: r.org.slug.clone(),
                    address: r.address.clone(),
                }),
                Verdict::Refuse(reason) => refused.push(RefusedDelivery {
                    org: r.org.slug.clone(),
                    address: r.address.clone(),
                    reason: reason.clone(),
                }),
            }
        }
        if deliveries.is_empty() {
            count("refused", "not_whitelisted");
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
        match &stored {
            Ok(_) => count("accepted", "spooled"),
            Err(_) => count("deferred", "storage_failure"),
        }
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

/// Counts a message's answer (or a recipient's refusal) for `/metrics`.
pub(super) fn count(outcome: &'static str, reason: &str) {
    postdesk_desk::metrics::metrics().inbound(outcome, reason);
}
