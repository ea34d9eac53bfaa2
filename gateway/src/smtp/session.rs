//! One SMTP/LMTP conversation: reading commands (smtp-proto), dispatching them to the
//! verb files, buffering replies so pipelined commands get one write.

use super::Mode;
use crate::Gateway;
use postdesk_store::Org;
use smtp_proto::request::receiver::RequestReceiver;
use smtp_proto::{Error as ProtoError, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// A recipient accepted at RCPT time.
#[derive(Debug, Clone)]
pub(super) struct Recipient {
    pub address: String,
    /// As found at RCPT (its sender whitelist is applied at the end of DATA).
    pub org: Org,
}

/// The state of one conversation.
pub(super) struct Session {
    pub gateway: Arc<Gateway>,
    pub mode: Mode,
    pub peer: SocketAddr,
    pub helo: Option<String>,
    pub mail_from: Option<String>,
    pub recipients: Vec<Recipient>,
    pub tls_active: bool,
    /// Replies not yet written.
    pub out: Vec<u8>,
}

/// What the command loop does after a command.
pub(super) enum Next {
    Continue,
    Data,
    StartTls,
    Quit,
}

pub(super) trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

impl Session {
    pub fn reply(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Forgets the current transaction (after a message, RSET, or a new EHLO).
    pub fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.recipients.clear();
    }

    pub async fn flush(&mut self, conn: &mut impl Conn) -> std::io::Result<()> {
        if !self.out.is_empty() {
            conn.write_all(&self.out).await?;
            conn.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    fn handle(&mut self, request: Request<String>) -> Next {
        match request {
            Request::Ehlo { host } => self.ehlo(host, false),
            Request::Helo { host } => self.ehlo(host, true),
            Request::Lhlo { host } => self.lhlo(host),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => return self.data_start(),
            Request::Rset => self.rset(),
            Request::Noop { .. } => self.reply("250 2.0.0 OK"),
            Request::Vrfy { .. } => self.vrfy(),
            Request::Expn { .. } => self.reply("502 5.5.1 EXPN is not available"),
            Request::Help { .. } => self.reply(
                "214 2.0.0 Commands: EHLO HELO LHLO MAIL RCPT DATA RSET NOOP VRFY QUIT STARTTLS",
            ),
            Request::StartTls => return self.starttls(),
            Request::Quit => {
                self.reply("221 2.0.0 Bye");
                return Next::Quit;
            }
            Request::Bdat { .. } => self.reply("502 5.5.1 BDAT is not supported here; use DATA"),
            Request::Auth { .. } => self
                .reply("502 5.5.1 AUTH is not offered; mail to organization addresses needs none"),
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.reply("502 5.5.1 Command not implemented")
            }
        }
        Next::Continue
    }

    fn protocol_error(&mut self, e: ProtoError) {
        let line = match e {
            ProtoError::ResponseTooLong => "500 5.5.2 Line too long".to_string(),
            ProtoError::UnknownCommand => "500 5.5.1 Unknown command".to_string(),
            ProtoError::InvalidSenderAddress => "501 5.1.7 Bad sender address syntax".to_string(),
            ProtoError::InvalidRecipientAddress => {
                "501 5.1.3 Bad recipient address syntax".to_string()
            }
            ProtoError::SyntaxError { syntax } => format!("501 5.5.4 Syntax: {syntax}"),
            ProtoError::InvalidParameter { param } => {
                format!("501 5.5.4 Invalid parameter {param:?}")
            }
            ProtoError::UnsupportedParameter { param } => {
                format!(
                    "555 5.5.4 Unsupported parameter {:?}",
                    param.chars().take(64).collect::<String>()
                )
            }
            _ => "500 5.5.2 Syntax error".to_string(),
        };
        self.reply(&line);
    }
}

/// Longest command line accepted (RFC 5321 allows 512; extensions make real ones longer).
const MAX_COMMAND_LINE: usize = 4096;

/// How a conversation ended.
enum End {
    Closed,
    Upgrade,
}

/// One conversation over any byte stream (TCP in production, in-memory in fuzz tests).
pub async fn run<S>(stream: S, peer: SocketAddr, gateway: Arc<Gateway>, mode: Mode)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut session = Session {
        gateway: gateway.clone(),
        mode,
        peer,
        helo: None,
        mail_from: None,
        recipients: Vec::new(),
        tls_active: false,
        out: Vec::new(),
    };
    let mut stream = stream;
    if !gateway.limits.allow_connection(peer.ip()) {
        session.reply(&format!(
            "421 4.7.0 {} Too many connections from your address; try again later",
            gateway.config.domain
        ));
        let _ = session.flush(&mut stream).await;
        return;
    }
    let kind = if mode == Mode::Lmtp { "LMTP" } else { "ESMTP" };
    session.reply(&format!(
        "220 {} {kind} Postdesk ready",
        gateway.config.domain
    ));
    match converse(&mut session, &mut stream).await {
        Ok(End::Upgrade) => {
            let Some(acceptor) = gateway.tls.clone() else {
                return;
            };
            match acceptor.accept(stream).await {
                Ok(mut tls) => {
                    session.tls_active = true;
                    session.helo = None;
                    session.reset_transaction();
                    if let Err(e) = converse(&mut session, &mut tls).await {
                        tracing::debug!(%peer, error = %e, "session ended");
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            }
        }
        Ok(End::Closed) => {}
        Err(e) => tracing::debug!(%peer, error = %e, "session ended"),
    }
}

/// The command loop: reads, parses and answers until QUIT, EOF, a timeout or STARTTLS.
async fn converse(session: &mut Session, conn: &mut impl Conn) -> std::io::Result<End> {
    let mut receiver = RequestReceiver::default();
    let mut input: Vec<u8> = Vec::new();
    // After an overlong command line: skip to its end before parsing again.
    let mut discarding_line = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if input.is_empty() {
            session.flush(conn).await?;
            let timeout = session.gateway.config.command_timeout;
            let mut stopping = session.gateway.stop.clone();
            let read = tokio::select! {
                r = read_within(session, conn, &mut buf, timeout, None) => r?,
                () = async {
                    // The borrow guard is dropped here, inside: it must not live across awaits.
                    let _ = stopping.wait_for(|s| *s).await;
                } => {
                    session.reply(&format!(
                        "421 4.3.2 {} Shutting down; please try again later",
                        session.gateway.config.domain
                    ));
                    session.flush(conn).await?;
                    return Ok(End::Closed);
                }
            };
            let n = match read {
                Read::Bytes(n) => n,
                Read::Closed => return Ok(End::Closed),
                Read::Silence | Read::Deadline => {
                    session.reply(&format!(
                        "421 4.4.2 {} Timeout waiting for a command; closing",
                        session.gateway.config.domain
                    ));
                    session.flush(conn).await?;
                    return Ok(End::Closed);
                }
            };
            input.extend_from_slice(&buf[..n]);
        }
        let mut next = Next::Continue;
        let consumed = {
            let mut iter = input.iter();
            loop {
                let rest = iter.as_slice();
                if discarding_line {
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(p) => {
                            iter = rest[p + 1..].iter();
                            discarding_line = false;
                            continue;
                        }
                        None => {
                            iter = [].iter();
                            break;
                        }
                    }
                }
                match rest.iter().position(|&b| b == b'\n') {
                    Some(p) if p > MAX_COMMAND_LINE => {
                        session.reply("500 5.5.2 Line too long");
                        iter = rest[p + 1..].iter();
                        continue;
                    }
                    None if rest.len() > MAX_COMMAND_LINE => {
                        session.reply("500 5.5.2 Line too long");
                        discarding_line = true;
                        iter = [].iter();
                        break;
                    }
                    _ => {}
                }
                match receiver.ingest(&mut iter) {
                    Ok(request) => {
                        let request = request.into_owned();
                        next = session.handle(request);
                        if !matches!(next, Next::Continue) {
                            break;
                        }
                    }
                    Err(ProtoError::NeedsMoreData { .. }) => break,
                    Err(e) => session.protocol_error(e),
                }
            }
            input.len() - iter.as_slice().len()
        };
        input.drain(..consumed);
        match next {
            Next::Continue => {}
            Next::Quit => {
                session.flush(conn).await?;
                return Ok(End::Closed);
            }
            Next::StartTls => {
                session.flush(conn).await?;
                // Anything pipelined after STARTTLS came before the handshake: discard it
                // (RFC 3207 section 4.2), so it cannot be injected into the TLS session.
                return Ok(End::Upgrade);
            }
            Next::Data => {
                session.flush(conn).await?;
                input = session
                    .receive_data(conn, std::mem::take(&mut input), &mut buf)
                    .await?;
            }
        }
    }
}

/// How a read from the client ended.
pub(super) enum Read {
    Bytes(usize),
    /// End of stream.
    Closed,
    /// The client said nothing for the allowed time.
    Silence,
    /// The deadline passed.
    Deadline,
}

/// Reads what the client sends, allowing `timeout` of silence, and never past `deadline`.
/// While the server is near its session cap, `stress_timeout` of silence is enough to give
/// up, counted from when this read began: a read already waiting when stress begins is
/// told at once and gives up at that shorter limit, so every silent session is shed
/// within `stress_timeout`.
pub(super) async fn read_within(
    session: &Session,
    conn: &mut impl Conn,
    buf: &mut [u8],
    timeout: Duration,
    deadline: Option<Instant>,
) -> std::io::Result<Read> {
    let sessions = &session.gateway.sessions;
    let started = Instant::now();
    let mut stress = sessions.watch_stress();
    loop {
        let silence = if *stress.borrow_and_update() {
            timeout.min(sessions.stress_timeout)
        } else {
            timeout
        };
        let silence_until = started + silence;
        let limit = deadline.map_or(silence_until, |d| d.min(silence_until));
        tokio::select! {
            // Reading is cancel-safe: a read cut short by a change of mode loses nothing.
            read = tokio::time::timeout_at(limit, conn.read(buf)) => return match read {
                Ok(Ok(0)) => Ok(Read::Closed),
                Ok(Ok(n)) => Ok(Read::Bytes(n)),
                Ok(Err(e)) => Err(e),
                Err(_) if deadline.is_some_and(|d| d <= silence_until) => Ok(Read::Deadline),
                Err(_) => Ok(Read::Silence),
            },
            // Stress began or ended: wait again with the allowance of the new mode.
            Ok(()) = stress.changed() => {}
        }
    }
}
