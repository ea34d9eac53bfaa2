//! The pipeline: takes spooled messages in order, parses and classifies them, threads each
//! delivery into a ticket and commits events + decisions atomically, several messages per
//! transaction. Resumes after a crash from the spool markers; a delivery already decided
//! is not applied twice.

use crate::{DmarcChecker, GatewayError};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use postdesk_store::{
    normalize_message_id, AttachmentRef, Change, Decision, DeliveryCommit, EventKind, Outcome,
    PipelineWrite, Priority, Status, Store, StoreError, TicketTarget, TicketType, Visibility,
};
use postdesk_threading::{
    classify, html_to_text, match_ticket, parse_commands, split_type_prefix, strip_reply,
    strip_signature, Command, MatchRule, ThreadingInput, TicketLookup, TypePrefix,
};
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Where DMARC checks get their DNS answers.
#[derive(Debug, Clone)]
pub enum DnsSource {
    /// The system resolvers.
    System,
    /// Only the TXT records in this text (zone-file lines); nothing goes to the network.
    Records(String),
}

/// The pipeline worker: wakes when the spool commits, and every second regardless.
pub struct Pipeline {
    store: Store,
    wake: Receiver<()>,
    dns: DnsSource,
}

impl Pipeline {
    pub fn new(store: Store, wake: Receiver<()>, dns: DnsSource) -> Pipeline {
        Pipeline { store, wake, dns }
    }

    /// Runs on its own thread until the spool writer is gone.
    pub fn run(self) {
        // Built here: the checker owns a small runtime, which must not be created or
        // dropped inside the server's async runtime.
        let checker = match &self.dns {
            DnsSource::System => DmarcChecker::system(),
            DnsSource::Records(text) => DmarcChecker::from_records(text),
        };
        let checker = match checker {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "DMARC checks are off; staff must prove themselves with reply tokens");
                None
            }
        };
        loop {
            if let Err(e) = process_pending(&self.store, checker.as_ref()) {
                tracing::error!(error = %e, "pipeline pass failed; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            match self.wake.recv_timeout(Duration::from_secs(1)) {
                Ok(()) => while self.wake.try_recv().is_ok() {},
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = process_pending(&self.store, checker.as_ref());
                    return;
                }
            }
        }
    }
}

/// Most messages committed by one pipeline transaction. Each store transaction costs a
/// log write with a sync of its own, and one per message made the pipeline's syncs, not
/// the receiver's, the limit on ingest (issue 6). But a store transaction also holds a
/// lock every other store operation waits for (the spool's writes, sessions' recipient
/// lookups, web reads): under c=20 load a 64-message commit took 14.5 ms on average
/// (74 ms at worst), waiting for or holding it, a 16-message one 5.5 ms. 16 keeps most
/// of the saving.
const MAX_BATCH_MESSAGES: usize = 16;

/// Processes every spooled message not yet completed, oldest first. Returns how many.
/// `dmarc` (when given) lets a staff member's mail prove itself by a DMARC pass.
pub fn process_pending(store: &Store, dmarc: Option<&DmarcChecker>) -> Result<usize, GatewayError> {
    let secret = store.secret("reply-token")?;
    let pending = store.pending_inbound()?;
    let mut batch = Batch::default();
    for &id in &pending {
        let mut planned = plan_guarded(store, &secret, dmarc, id, &batch)?;
        if planned.read_batch {
            // This message threads on one planned in this batch: commit those first, so
            // it is planned against the tickets they made.
            batch.commit(store)?;
            planned = plan_guarded(store, &secret, dmarc, id, &batch)?;
        }
        batch.add(id, planned.writes);
        if batch.messages.len() >= MAX_BATCH_MESSAGES {
            batch.commit(store)?;
        }
    }
    batch.commit(store)?;
    Ok(pending.len())
}

/// One message's planned writes, and whether planning read something the batch changes.
struct Planned {
    writes: Vec<PipelineWrite>,
    read_batch: bool,
}

/// Plans one message. Storage trouble is returned (the pass stops and retries later);
/// anything else about the message, a panic in a parser included, becomes a recorded
/// refusal, so one hostile message never blocks those behind it or poisons every restart.
fn plan_guarded(
    store: &Store,
    secret: &[u8],
    dmarc: Option<&DmarcChecker>,
    id: u64,
    batch: &Batch,
) -> Result<Planned, GatewayError> {
    let lookup = BatchLookup {
        store,
        batch,
        read_batch: Cell::new(false),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        plan_message(store, secret, dmarc, id, &lookup)
    }));
    let writes = match outcome {
        Ok(Ok(writes)) => writes,
        Ok(Err(e @ GatewayError::Store(StoreError::Db(_)))) | Ok(Err(e @ GatewayError::Io(_))) => {
            return Err(e)
        }
        Ok(Err(e)) => {
            tracing::error!(inbound = id, error = %e, "message could not be applied; recorded as refused");
            failure_writes(
                store,
                id,
                &format!("the message could not be applied: {e}; the original is kept"),
            )?
        }
        Err(_) => {
            tracing::error!(
                inbound = id,
                "processing panicked; message recorded as refused"
            );
            failure_writes(
                store,
                id,
                "the message could not be processed (parser failure); the original is kept",
            )?
        }
    };
    Ok(Planned {
        writes,
        read_batch: lookup.read_batch.get(),
    })
}

/// Messages planned and not yet committed, with what their writes touch, so a later
/// message that would read those tickets or Message-IDs waits for the commit.
#[derive(Default)]
struct Batch {
    writes: Vec<PipelineWrite>,
    /// Inbound id and how many of `writes` are its.
    messages: Vec<(u64, usize)>,
    /// (organization, normalized Message-ID) of planned deliveries.
    message_ids: HashSet<(String, String)>,
    /// Existing tickets planned deliveries change.
    tickets: HashSet<u64>,
    opens_tickets: bool,
}

impl Batch {
    fn add(&mut self, id: u64, writes: Vec<PipelineWrite>) {
        for w in &writes {
            if let PipelineWrite::Delivery(c) = w {
                if let Some(m) = &c.message_id {
                    self.message_ids
                        .insert((c.org.clone(), normalize_message_id(m)));
                }
                match c.target {
                    TicketTarget::Existing(n) => {
                        self.tickets.insert(n);
                    }
                    TicketTarget::New { .. } => self.opens_tickets = true,
                }
            }
        }
        self.messages.push((id, writes.len()));
        self.writes.extend(writes);
    }

    /// Commits the batch in one transaction. If it cannot be applied as a whole (a ticket
    /// deleted meanwhile, bad data), each message is committed alone and one that still
    /// fails is recorded as refused; storage errors are returned and the batch is planned
    /// again on the next pass.
    fn commit(&mut self, store: &Store) -> Result<(), GatewayError> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(self);
        let started = std::time::Instant::now();
        match store.commit_pipeline(&batch.writes) {
            Ok(decisions) => {
                tracing::debug!(
                    messages = batch.messages.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "pipeline batch committed"
                );
                log_decided(&batch.writes, &decisions)
            }
            Err(e @ StoreError::Db(_)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, messages = batch.messages.len(), "batch not applied as a whole; committing message by message");
                let mut rest = batch.writes.as_slice();
                for &(id, n) in &batch.messages {
                    let (mine, after) = rest.split_at(n);
                    rest = after;
                    match store.commit_pipeline(mine) {
                        Ok(decisions) => log_decided(mine, &decisions),
                        Err(e @ StoreError::Db(_)) => return Err(e.into()),
                        Err(e) => {
                            tracing::error!(inbound = id, error = %e, "message could not be applied; recorded as refused");
                            let refusal = failure_writes(
                                store,
                                id,
                                &format!(
                                    "the message could not be applied: {e}; the original is kept"
                                ),
                            )?;
                            store.commit_pipeline(&refusal)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn log_decided(writes: &[PipelineWrite], decisions: &[Decision]) {
    for (w, d) in writes.iter().zip(decisions) {
        if matches!(w, PipelineWrite::Delivery(_)) {
            tracing::info!(inbound = d.inbound, org = %d.org, outcome = ?d.outcome, "inbound decided");
        }
    }
}

/// A refusal for every delivery of a message, completing it.
fn failure_writes(
    store: &Store,
    id: u64,
    reason: &str,
) -> Result<Vec<PipelineWrite>, GatewayError> {
    let orgs: Vec<String> = match store.envelope(id)? {
        Some(e) => e
            .deliveries
            .iter()
            .map(|d| d.org.clone())
            .chain(e.refused.iter().map(|r| r.org.clone()))
            .collect(),
        None => vec![String::new()],
    };
    let orgs = if orgs.is_empty() {
        vec![String::new()]
    } else {
        orgs
    };
    let last = orgs.len() - 1;
    let mut writes = Vec::with_capacity(orgs.len());
    for (i, org) in orgs.into_iter().enumerate() {
        let d = Decision {
            inbound: id,
            org,
            message_id: None,
            from: String::new(),
            subject: String::new(),
            outcome: Outcome::Refused {
                reason: reason.to_string(),
            },
            notes: vec![],
            at: time::OffsetDateTime::now_utc(),
        };
        writes.push(PipelineWrite::Decision {
            decision: d,
            last_delivery: i == last,
        });
    }
    Ok(writes)
}

/// The store as threading sees it, noting when an answer may be changed by a planned,
/// uncommitted message of the batch.
struct BatchLookup<'a> {
    store: &'a Store,
    batch: &'a Batch,
    read_batch: Cell<bool>,
}

impl BatchLookup<'_> {
    fn ticket(&self, number: u64) -> Option<postdesk_store::Ticket> {
        if self.batch.tickets.contains(&number) {
            self.read_batch.set(true);
        }
        let ticket = self.store.ticket(number).ok().flatten();
        if ticket.is_none() && self.batch.opens_tickets {
            self.read_batch.set(true);
        }
        ticket
    }
}

impl TicketLookup for BatchLookup<'_> {
    fn ticket_for_message_id(&self, org: &str, message_id: &str) -> Option<u64> {
        if self
            .batch
            .message_ids
            .contains(&(org.to_string(), normalize_message_id(message_id)))
        {
            self.read_batch.set(true);
        }
        self.store
            .ticket_for_message_id(org, message_id)
            .ok()
            .flatten()
    }
    fn ticket_org(&self, ticket: u64) -> Option<String> {
        self.ticket(ticket).map(|t| t.org)
    }
    fn is_participant(&self, ticket: u64, address: &str) -> bool {
        self.ticket(ticket).is_some_and(|t| {
            t.requester == address
                || t.participants.iter().any(|p| p == address)
                || t.cc.iter().any(|p| p == address)
        })
    }
}

fn lower_addresses(list: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    list.map(|a| {
        a.iter()
            .filter_map(|x| x.address())
            .map(|x| x.trim().to_ascii_lowercase())
            .filter(|x| x.contains('@'))
            .collect()
    })
    .unwrap_or_default()
}

fn id_list(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    v.as_text_list()
        .map(|l| {
            l.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The display text of a message: its text body (or its HTML as text), quotes stripped,
/// and a closing block that signs with the sender's name removed.
pub(crate) fn display_text(msg: &Message<'_>) -> String {
    let sender_name = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .unwrap_or("")
        .to_string();
    let body = if !msg.text_body.is_empty()
        && msg
            .text_body
            .first()
            .and_then(|&i| msg.part(i))
            .is_some_and(|p| matches!(p.body, PartType::Text(_)))
    {
        msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
    } else if let Some(html) = msg.body_html(0) {
        html_to_text(&html)
    } else {
        msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
    };
    strip_signature(&strip_reply(&body), &sender_name)
}

/// The Message-ID a delivery report is about: from its returned message or headers part.
fn reported_message_id(msg: &Message<'_>) -> Option<String> {
    msg.parts.iter().find_map(|part| {
        // A returned message parsed as such, or its headers carried as text or bytes.
        if let PartType::Message(inner) = &part.body {
            return inner.message_id().map(str::to_string);
        }
        let returned_headers = part.content_type().is_some_and(|ct| {
            ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("rfc822-headers") || s.eq_ignore_ascii_case("rfc822")
            })
        });
        let bytes: &[u8] = match &part.body {
            PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref(),
            _ => return None,
        };
        if !returned_headers {
            return None;
        }
        let headers = MessageParser::new().parse_headers(bytes)?;
        headers.message_id().map(str::to_string)
    })
}

fn attachments(store: &Store, msg: &Message<'_>) -> Result<Vec<AttachmentRef>, GatewayError> {
    let mut out = Vec::new();
    for part in msg.attachments() {
        let contents = part.contents();
        let name = part
            .attachment_name()
            .map(|n| n.replace(['/', '\\', '\r', '\n'], "_"))
            .unwrap_or_else(|| "attachment".into());
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        let sha256 = store.put_blob(contents)?;
        out.push(AttachmentRef {
            name,
            content_type,
            size: contents.len() as u64,
            sha256,
        });
    }
    Ok(out)
}

/// Decides what one spooled message does, as writes to commit: a delivery into a ticket or
/// a refusal for each organization it was accepted for, the last one completing it.
fn plan_message(
    store: &Store,
    secret: &[u8],
    dmarc: Option<&DmarcChecker>,
    id: u64,
    lookup: &BatchLookup<'_>,
) -> Result<Vec<PipelineWrite>, GatewayError> {
    let (Some(envelope), Some(raw)) = (store.envelope(id)?, store.raw_message(id)?) else {
        tracing::error!(
            inbound = id,
            "spool marker without its message; dropping marker"
        );
        let d = Decision {
            inbound: id,
            org: String::new(),
            message_id: None,
            from: String::new(),
            subject: String::new(),
            outcome: Outcome::Refused {
                reason: "spooled message missing from the store".into(),
            },
            notes: vec![],
            at: time::OffsetDateTime::now_utc(),
        };
        return Ok(vec![PipelineWrite::Decision {
            decision: d,
            last_delivery: true,
        }]);
    };
    let now = time::OffsetDateTime::now_utc();
    let total = envelope.deliveries.len() + envelope.refused.len();
    let mut writes = Vec::with_capacity(total);
    let mut finish = |d: Decision| {
        writes.push(PipelineWrite::Decision {
            decision: d,
            last_delivery: writes.len() + 1 == total,
        });
    };
    let parsed = MessageParser::default().parse(&raw[..]);
    let subject = parsed
        .as_ref()
        .and_then(|m| m.subject())
        .unwrap_or("")
        .trim()
        .to_string();
    let from = parsed
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| envelope.mail_from.trim().to_ascii_lowercase());
    let message_id = parsed
        .as_ref()
        .and_then(|m| m.message_id())
        .map(str::to_string);
    for r in &envelope.refused {
        let d = Decision {
            inbound: id,
            org: r.org.clone(),
            message_id: message_id.clone(),
            from: from.clone(),
            subject: subject.clone(),
            outcome: Outcome::Refused {
                reason: r.reason.clone(),
            },
            notes: vec![format!("recipient {}", r.address)],
            at: now,
        };
        finish(d);
    }
    let Some(msg) = parsed else {
        for delivery in &envelope.deliveries {
            let d = Decision {
                inbound: id,
                org: delivery.org.clone(),
                message_id: None,
                from: from.clone(),
                subject: String::new(),
                outcome: Outcome::Refused {
                    reason: "message could not be parsed; the original is kept".into(),
                },
                notes: vec![],
                at: now,
            };
            finish(d);
        }
        return Ok(writes);
    };
    let class = classify(&msg, &envelope.mail_from);
    let text = display_text(&msg);
    let files = attachments(store, &msg)?;
    let in_reply_to = id_list(msg.in_reply_to());
    let references = id_list(msg.references());
    let to = lower_addresses(msg.to());
    let cc = lower_addresses(msg.cc());
    let staff = store.staff(&from)?;
    let deliveries = envelope.deliveries.len();
    for (n, delivery) in envelope.deliveries.iter().enumerate() {
        let last = writes.len() + 1 == total && n + 1 == deliveries;
        let org = store.org(&delivery.org)?;
        let org_addresses = org.map(|o| o.addresses).unwrap_or_default();
        let is_org_address = |a: &String| {
            let base = match a.split_once('@') {
                Some((l, d)) => format!("{}@{d}", l.split('+').next().unwrap_or(l)),
                None => a.clone(),
            };
            org_addresses.contains(&base)
        };
        let mut notes = class.reasons.clone();
        let input = ThreadingInput {
            org: &delivery.org,
            sender: &from,
            recipients: std::slice::from_ref(&delivery.address),
            in_reply_to: &in_reply_to,
            references: &references,
            subject: &subject,
        };
        let m = match_ticket(&input, secret, lookup);
        let mut by_staff = staff.is_some() && m.rule == MatchRule::ReplyToken;
        if staff.is_some() && !by_staff {
            let verdict = dmarc.map(|c| {
                let peer = envelope
                    .peer
                    .parse::<std::net::SocketAddr>()
                    .map(|a| a.ip())
                    .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                let host = delivery
                    .address
                    .rsplit_once('@')
                    .map_or("localhost", |(_, d)| d);
                c.check(&raw, peer, &envelope.helo, &envelope.mail_from, host)
            });
            match verdict {
                Some(v) if v.pass => {
                    by_staff = true;
                    notes.push(format!("staff member {from} proven by {}", v.detail));
                }
                other => notes.push(format!(
                    "From names staff member {from} but carries no proof (reply token or DMARC pass{}); handled as an end user's mail",
                    other.map(|v| format!(": {}", v.detail)).unwrap_or_default()
                )),
            }
        }
        let (target, kind, rule): (TicketTarget, EventKind, &str) = if class.delivery_report {
            let about = reported_message_id(&msg)
                .and_then(|mid| lookup.ticket_for_message_id(&delivery.org, &mid))
                .or(m.ticket);
            match about {
                Some(t) => (
                    TicketTarget::Existing(t),
                    EventKind::DeliveryReport,
                    "delivery_report",
                ),
                None => {
                    let d = Decision {
                        inbound: id,
                        org: delivery.org.clone(),
                        message_id: message_id.clone(),
                        from: from.clone(),
                        subject: subject.clone(),
                        outcome: Outcome::Refused {
                            reason: "delivery report about a message not known here; recorded, no ticket opened".into(),
                        },
                        notes,
                        at: now,
                    };
                    writes.push(PipelineWrite::Decision {
                        decision: d,
                        last_delivery: last,
                    });
                    continue;
                }
            }
        } else {
            match m.ticket {
                Some(t) => (TicketTarget::Existing(t), EventKind::Reply, m.rule.as_str()),
                None => {
                    let (prefix, summary) = split_type_prefix(&subject);
                    let ticket_type = match prefix {
                        TypePrefix::Incident => TicketType::Incident,
                        TypePrefix::Bug => TicketType::Bug,
                        TypePrefix::Question => TicketType::Question,
                    };
                    let summary = if summary.is_empty() {
                        "(no subject)".to_string()
                    } else {
                        summary.chars().take(300).collect()
                    };
                    (
                        TicketTarget::New {
                            ticket_type,
                            summary,
                            requester: from.clone(),
                            automatic: class.automatic,
                        },
                        EventKind::Created,
                        MatchRule::New.as_str(),
                    )
                }
            }
        };
        // A proven staff member may steer an existing ticket with command lines on top.
        let mut text = text.clone();
        let mut kind = kind;
        let mut visibility = Visibility::Public;
        let mut changes = Vec::new();
        if by_staff && kind == EventKind::Reply {
            match staff_commands(store, &from, &text)? {
                StaffReply::Plain => {}
                StaffReply::Commands {
                    note,
                    changes: c,
                    rest,
                } => {
                    text = rest;
                    changes = c;
                    if note {
                        visibility = Visibility::Internal;
                    }
                    notes.push(format!(
                        "{} command(s) applied",
                        changes.len() + usize::from(note)
                    ));
                }
                StaffReply::Rejected(errors) => {
                    notes.push(format!("commands not understood: {}", errors.join("; ")));
                    text = errors.join("\n");
                    kind = EventKind::CommandsRejected;
                    visibility = Visibility::Internal;
                }
            }
        }
        let mut participants = vec![from.clone()];
        participants.extend(
            to.iter()
                .chain(cc.iter())
                .filter(|a| !is_org_address(a))
                .cloned(),
        );
        participants.dedup();
        let commit = DeliveryCommit {
            inbound: id,
            org: delivery.org.clone(),
            message_id: message_id.clone(),
            from: from.clone(),
            subject: subject.clone(),
            target,
            kind,
            by_staff,
            text,
            attachments: files.clone(),
            automatic: class.automatic,
            participants,
            cc: cc
                .iter()
                .filter(|a| !is_org_address(a) && **a != from)
                .cloned()
                .collect(),
            rule: rule.to_string(),
            notes,
            visibility,
            changes,
            last_delivery: last,
            at: now,
        };
        writes.push(PipelineWrite::Delivery(commit));
    }
    Ok(writes)
}

/// What a staff reply's command lines amount to.
enum StaffReply {
    Plain,
    Commands {
        note: bool,
        changes: Vec<Change>,
        rest: String,
    },
    /// Nothing is applied: the sender is told what was not understood.
    Rejected(Vec<String>),
}

fn staff_commands(store: &Store, sender: &str, text: &str) -> Result<StaffReply, GatewayError> {
    let parsed = parse_commands(text);
    if parsed.commands.is_empty() && parsed.errors.is_empty() {
        return Ok(StaffReply::Plain);
    }
    let mut errors = parsed.errors;
    let mut changes = Vec::new();
    let mut note = false;
    for c in parsed.commands {
        match c {
            Command::Status(s) => match s.parse::<Status>() {
                Ok(s) => changes.push(Change::Status(s)),
                Err(e) => errors.push(e),
            },
            Command::Priority(p) => match p.parse::<Priority>() {
                Ok(p) => changes.push(Change::Priority(p)),
                Err(e) => errors.push(e),
            },
            Command::Due(d) => changes.push(Change::Due(Some(d))),
            Command::Note => note = true,
            Command::Assign(who) => {
                let who = who.unwrap_or_else(|| sender.to_string());
                match store.staff(&who)? {
                    Some(s) => changes.push(Change::Assignee(Some(s.email))),
                    None => errors.push(format!("#assign {who}: not a staff member")),
                }
            }
        }
    }
    Ok(if errors.is_empty() {
        StaffReply::Commands {
            note,
            changes,
            rest: parsed.text,
        }
    } else {
        StaffReply::Rejected(errors)
    })
}
