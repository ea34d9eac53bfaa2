//! Planning one spooled message: parse, classify, display text, thread each delivery into
//! a ticket, decide who is writing (a participant, proven staff, or someone whose mail is
//! held for staff) and what it may change, as writes for the pipeline to commit. Every
//! step is linear in the message or capped; nothing here writes but attachment blobs.

use super::commands::{staff_commands, StaffReply};
use super::content::{
    attachments, display_text, id_list, reported_message_id, truncated, MAX_IN_REPLY_TO,
    MAX_REFERENCES,
};
use super::lookup::BatchLookup;
use super::people::{named_addresses, new_cc, usable_address};

use crate::{DmarcChecker, GatewayError, SenderCheck};
use mail_parser::{Message, MessageParser};
use postdesk_desk::policy;
use postdesk_store::{
    AttachmentRef, Change, Clock, Decision, DeliveryCommit, Envelope, EventKind, Outcome,
    PipelineWrite, Source, Staff, Store, StoreError, TicketTarget, TicketType, Visibility,
};
use postdesk_threading::{
    classify, match_ticket, parse_commands, split_type_prefix, MatchRule, ThreadingInput,
    TicketLookup, TypePrefix,
};
use std::cell::OnceCell;

/// What planning needs besides the message: the store, the reply-token key, the
/// DKIM/DMARC checker when there is one, the flag that tells a worker the pipeline gave
/// up on it, and the server's stop signal when it runs in one.
pub(super) struct PlanContext<'a> {
    pub store: &'a Store,
    pub secret: &'a [u8],
    pub dmarc: Option<&'a DmarcChecker>,
    pub cancelled: &'a std::sync::atomic::AtomicBool,
    pub stop: Option<&'a tokio::sync::watch::Receiver<bool>>,
    pub clock: &'a dyn Clock,
}

impl PlanContext<'_> {
    /// Whether the server is stopping (the signal set, or its sender gone): a pass ends
    /// after the message in hand, and what is still pending waits, durable in the spool,
    /// for the next start, so a backlog of slow mail cannot hold the stop.
    pub(super) fn stopping(&self) -> bool {
        super::stop_signalled(self.stop)
    }

    /// Stops planning, between steps, once the pipeline has given up on this worker (the
    /// message ran past its budget): its answer would be dropped anyway.
    pub(super) fn go_on(&self) -> Result<(), GatewayError> {
        if self.cancelled.load(std::sync::atomic::Ordering::Relaxed) {
            Err(GatewayError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A decision that changes no ticket.
fn refusal(
    envelope_id: u64,
    org: &str,
    head: &Head,
    reason: String,
    notes: Vec<String>,
) -> Decision {
    Decision {
        inbound: envelope_id,
        org: org.to_string(),
        message_id: head.message_id.clone(),
        from: head.from.clone(),
        subject: head.subject.clone(),
        outcome: Outcome::Refused { reason },
        notes,
        at: head.now,
    }
}

/// What every decision about a message repeats.
pub(super) struct Head {
    pub(super) from: String,
    subject: String,
    message_id: Option<String>,
    now: time::OffsetDateTime,
}

/// Decides what one spooled message does, as writes to commit: a delivery into a ticket or
/// a refusal for each organization it was accepted for, the last one completing it.
pub(super) fn plan_message(
    context: &PlanContext<'_>,
    id: u64,
    lookup: &BatchLookup<'_>,
) -> Result<Vec<PipelineWrite>, GatewayError> {
    let store = context.store;
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
            at: context.clock.now(),
        };
        return Ok(vec![PipelineWrite::Decision {
            decision: d,
            last_delivery: true,
        }]);
    };
    let total = envelope.deliveries.len() + envelope.refused.len();
    let mut writes = Vec::with_capacity(total);
    let mut finish = |d: Decision| {
        writes.push(PipelineWrite::Decision {
            decision: d,
            last_delivery: writes.len() + 1 == total,
        });
    };
    let parsed = MessageParser::default().parse(&raw[..]);
    context.go_on()?;
    let head = Head {
        subject: parsed
            .as_ref()
            .and_then(|m| m.subject())
            .map(|s| truncated(s.trim(), 1000).to_string())
            .unwrap_or_default(),
        // The From's address, else the return path's; with neither, the mail is answered
        // to no one.
        from: parsed
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .and_then(usable_address)
            .or_else(|| usable_address(&envelope.mail_from))
            .unwrap_or_default(),
        message_id: parsed
            .as_ref()
            .and_then(|m| m.message_id())
            .map(|m| truncated(m, 1000).to_string()),
        // Old mail read from a file keeps its time (its Date, as the import found it).
        now: match envelope.source {
            Source::Import => envelope.received_at,
            _ => context.clock.now(),
        },
    };
    for r in &envelope.refused {
        finish(refusal(
            id,
            &r.org,
            &head,
            r.reason.clone(),
            vec![format!("recipient {}", r.address)],
        ));
    }
    let Some(msg) = parsed else {
        for delivery in &envelope.deliveries {
            let mut d = refusal(
                id,
                &delivery.org,
                &head,
                "message could not be parsed; the original is kept".into(),
                vec![],
            );
            d.message_id = None;
            d.subject = String::new();
            finish(d);
        }
        return Ok(writes);
    };
    context.go_on()?;
    let message = Planning {
        context,
        envelope: &envelope,
        raw: &raw,
        msg: &msg,
        head: &head,
        class: classify(&msg, &envelope.mail_from),
        text: display_text(&msg),
        in_reply_to: id_list(msg.in_reply_to(), MAX_IN_REPLY_TO),
        references: id_list(msg.references(), MAX_REFERENCES),
        named: named_addresses(&msg),
        staff: store.staff(&head.from)?,
        dkim_proof: OnceCell::new(),
        sender: OnceCell::new(),
    };
    let (files, files_note) = attachments(store, &msg)?;
    let deliveries = envelope.deliveries.len();
    for (n, delivery) in envelope.deliveries.iter().enumerate() {
        context.go_on()?;
        let last = writes.len() + 1 == total && n + 1 == deliveries;
        match message.delivery(id, delivery, lookup, &files, files_note.as_deref(), last)? {
            Ok(commit) => writes.push(PipelineWrite::Delivery(commit)),
            Err(decision) => writes.push(PipelineWrite::Decision {
                decision,
                last_delivery: last,
            }),
        }
    }
    Ok(writes)
}

/// A parsed message and what every one of its deliveries shares, worked out at most once.
pub(super) struct Planning<'a> {
    pub(super) context: &'a PlanContext<'a>,
    pub(super) envelope: &'a Envelope,
    pub(super) raw: &'a [u8],
    msg: &'a Message<'a>,
    pub(super) head: &'a Head,
    class: postdesk_threading::Classification,
    text: String,
    in_reply_to: Vec<String>,
    references: Vec<String>,
    /// To and Cc addresses (capped) and how many more there were.
    named: (Vec<String>, usize),
    /// The staff member the From names, proven or not.
    staff: Option<Staff>,
    /// Whether aligned DKIM proves the staff From (checked only when needed).
    pub(super) dkim_proof: OnceCell<Result<String, String>>,
    /// What DMARC says of an end user's From (checked only when needed; `.1` whether it
    /// was asked to authenticate, not only to look for forgery).
    pub(super) sender: OnceCell<(SenderCheck, bool)>,
}

/// Who is writing into an existing ticket, and so what the mail may do there.
enum Writer {
    /// A participant: the requester, a CC, someone staff let in, or proven staff who may
    /// see the ticket.
    Participant,
    /// Anyone else: the mail is held as an internal entry for staff to decide.
    Outsider,
}

impl Planning<'_> {
    /// One delivery: the commit into a ticket, or the decision that refuses it.
    fn delivery(
        &self,
        id: u64,
        delivery: &postdesk_store::Delivery,
        lookup: &BatchLookup<'_>,
        files: &[AttachmentRef],
        files_note: Option<&str>,
        last: bool,
    ) -> Result<Result<DeliveryCommit, Decision>, GatewayError> {
        let store = self.context.store;
        let from = &self.head.from;
        let Some(org) = store.org(&delivery.org)? else {
            // Accepted before its organization was deleted: there is no desk to take it.
            let reason = format!("organization {} no longer exists", delivery.org);
            return Ok(Err(refusal(id, &delivery.org, self.head, reason, vec![])));
        };
        let host = delivery
            .address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d);
        let whitelisted = org.allows_sender(Some(from));
        let org_addresses = org.addresses;
        let is_ours = |a: &str| {
            let base = match a.split_once('@') {
                Some((l, d)) => format!("{}@{d}", l.split('+').next().unwrap_or(l)),
                None => a.to_string(),
            };
            org_addresses.contains(&base)
        };
        let mut notes = self.class.reasons.clone();
        notes.extend(files_note.map(str::to_string));
        if self.named.1 > 0 {
            notes.push(format!(
                "To/Cc named {} more address(es) than the {} looked at",
                self.named.1,
                self.named.0.len()
            ));
        }
        let input = ThreadingInput {
            org: &delivery.org,
            sender: from,
            recipients: std::slice::from_ref(&delivery.address),
            in_reply_to: &self.in_reply_to,
            references: &self.references,
            subject: &self.head.subject,
        };
        let m = match_ticket(&input, self.context.secret, lookup);
        // Proof that the From is the staff member it names: a reply token issued to them,
        // or a DKIM signature aligned with the From domain (SPF never proves a person).
        let by_staff = match &self.staff {
            Some(_) if m.rule == MatchRule::ReplyToken => true,
            Some(_) => match self.dkim_proof() {
                Ok(how) => {
                    notes.push(format!("staff member {from} proven by {how}"));
                    true
                }
                Err(why) => {
                    notes.push(format!(
                        "From names staff member {from} but carries no proof (reply token or aligned DKIM: {why}); handled as an end user's mail"
                    ));
                    false
                }
            },
            None => false,
        };
        let staff = self.staff.as_ref().filter(|_| by_staff);
        // The receiver let this mail past the organization's whitelist because it names a
        // staff member or went to a reply address; only a proven sender may use that.
        if !whitelisted && !by_staff && m.rule != MatchRule::ReplyToken {
            return Ok(Err(refusal(
                id,
                &delivery.org,
                self.head,
                format!(
                    "the sender's domain is not on the whitelist of {}, and nothing proves the \
                     sender (no reply token, no staff proof)",
                    delivery.org
                ),
                notes,
            )));
        }
        // Mail spooled before its sender was blocked, or fetched from a mailbox, meets the
        // blocklist here.
        if !by_staff && store.is_blocked(&delivery.org, from)? {
            return Ok(Err(refusal(
                id,
                &delivery.org,
                self.head,
                format!("{from} is blocked by {} (marked as spam)", delivery.org),
                notes,
            )));
        }
        if self.class.delivery_report {
            // A report attaches only about a mail we sent (its Message-ID is ours, keyed and
            // unguessable): anyone can write "multipart/report" and name a customer's id.
            let mut about = None;
            if let Some(mid) = reported_message_id(self.msg) {
                if store.is_our_message_id(&delivery.org, &mid)? {
                    about = lookup.ticket_for_message_id(&delivery.org, &mid);
                }
            }
            let Some(t) = about else {
                return Ok(Err(refusal(
                    id,
                    &delivery.org,
                    self.head,
                    "delivery report about no message sent from here; recorded, no ticket \
                     changed"
                        .into(),
                    notes,
                )));
            };
            // A report widens nothing and is for staff: it is about a mail, not a person
            // joining in.
            return Ok(Ok(self.commit(
                id,
                delivery,
                TicketTarget::Existing(t),
                EventKind::DeliveryReport,
                "delivery_report",
                Entry {
                    visibility: Visibility::Internal,
                    ..Entry::public(self.text.clone())
                },
                files,
                notes,
                last,
            )));
        }
        // Staff are never copied from mail: a CC may see the ticket, and who may is the
        // policy's to say (an assignment), not a sender's.
        let mut named = Vec::with_capacity(self.named.0.len());
        for a in &self.named.0 {
            if !is_ours(a) && store.staff(a)?.is_none() {
                named.push(a.clone());
            }
        }
        let Some(number) = m.ticket else {
            // A new request.
            let (prefix, summary) = split_type_prefix(&self.head.subject);
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
            // An acknowledgement would go back to the From, and staff answers to its CCs:
            // neither when the From is likely forged.
            let spoofing = (!self.class.automatic && !by_staff)
                .then(|| self.sender(host, false).spoofing)
                .flatten();
            let (cc, cc_note) = match &spoofing {
                Some(why) => {
                    notes.push(format!(
                        "suspected spoofing: {why}; no acknowledgement is sent and nobody is copied"
                    ));
                    (Vec::new(), None)
                }
                None => new_cc(&named, from, None, |_| false),
            };
            notes.extend(cc_note);
            let mut participants = vec![from.clone()];
            participants.extend(named.iter().cloned());
            return Ok(Ok(self.commit(
                id,
                delivery,
                TicketTarget::New {
                    ticket_type,
                    summary,
                    requester: from.clone(),
                    automatic: self.class.automatic,
                },
                EventKind::Created,
                MatchRule::New.as_str(),
                Entry {
                    by_staff,
                    participants,
                    cc,
                    suspected_spoofing: spoofing.is_some(),
                    ..Entry::public(self.text.clone())
                },
                files,
                notes,
                last,
            )));
        };
        let Some(ticket) = lookup.ticket(number) else {
            return Err(GatewayError::Store(StoreError::NotFound(format!(
                "ticket {number}"
            ))));
        };
        let may_see = staff.is_some_and(|s| policy::can_view_ticket(s, &ticket));
        if staff.is_some() && !may_see {
            notes.push(format!(
                "staff member {from} may not see ticket {number}; the mail is held like a non-participant's"
            ));
        }
        // Staff take part in what the policy lets them see, however they proved themselves;
        // anyone else by being the requester, a CC, or let in by staff (a reply address
        // handed out). A reply token proves who writes, not that they may: a former
        // employee's or a removed CC's old token lets them in no more.
        let takes_part = match staff {
            Some(_) => may_see,
            // A reply naming a Message-ID several senders used may be in another
            // conversation than this ticket's (someone sent first with a copied id): it
            // is kept for staff, not added where the first sender's ticket is read.
            None if m.contested => {
                notes.push(
                    "threaded by a Message-ID more than one sender used; kept for staff".into(),
                );
                false
            }
            None => {
                ticket.requester == *from
                    || ticket.cc.iter().any(|c| c == from)
                    || store.reply_granted(number, from)?
            }
        };
        // Who writes by address only (no token, no staff proof) is believed unless the
        // address's domain says mail failing DMARC is forged and this mail fails it.
        let proven = by_staff || m.rule == MatchRule::ReplyToken;
        let forged = if takes_part && !proven {
            self.sender(host, false).spoofing
        } else {
            None
        };
        if let Some(why) = &forged {
            notes.push(format!("suspected spoofing: {why}"));
        }
        let writer = if takes_part && forged.is_none() {
            Writer::Participant
        } else {
            Writer::Outsider
        };
        let mut entry = Entry {
            by_staff: may_see,
            suspected_spoofing: forged.is_some(),
            ..Entry::public(self.text.clone())
        };
        let mut kind = EventKind::Reply;
        match writer {
            Writer::Outsider => {
                notes.push(format!(
                    "{from} takes no part in ticket {number}: kept as an internal entry until staff accept the sender or open it as a ticket of its own"
                ));
                entry.held = true;
                entry.visibility = Visibility::Internal;
                // A proven staff member who may not see the ticket is told so, like a
                // bad command; the lines are never applied.
                let commands = parse_commands(&self.text);
                if staff.is_some() && !(commands.commands.is_empty() && commands.errors.is_empty())
                {
                    kind = EventKind::CommandsRejected;
                    entry.text = format!("You may not change ticket #{number}.");
                    notes.push("commands refused: the sender may not see this ticket".into());
                }
            }
            Writer::Participant => {
                let (mut cc, mut cc_note) = new_cc(&named, from, Some(&ticket), |_| false);
                // Widening who receives a ticket's mail needs a sender whose address is
                // proven: a reply token, staff proof, or a DMARC pass for its domain.
                if !cc.is_empty() && !proven && !self.sender(host, true).authenticated {
                    cc_note = Some(format!(
                        "{} address(es) named in To/Cc not copied on the ticket: nothing proves \
                         the sender's address (no reply token, no DMARC pass)",
                        cc.len()
                    ));
                    cc.clear();
                }
                notes.extend(cc_note);
                entry.cc = cc;
                entry.participants = std::iter::once(from.clone()).chain(named).collect();
                if let Some(staff) = staff {
                    // A proven staff member may steer the ticket with command lines on top.
                    match staff_commands(store, staff, &self.text)? {
                        StaffReply::Plain => {}
                        StaffReply::Commands {
                            note,
                            changes,
                            rest,
                        } => {
                            notes.push(format!(
                                "{} command(s) applied",
                                changes.len() + usize::from(note)
                            ));
                            entry.text = rest;
                            entry.changes = changes;
                            if note {
                                entry.visibility = Visibility::Internal;
                            }
                        }
                        StaffReply::Rejected(errors) => {
                            notes.push(format!("commands not understood: {}", errors.join("; ")));
                            entry.text = errors.join("\n");
                            kind = EventKind::CommandsRejected;
                            entry.visibility = Visibility::Internal;
                        }
                    }
                }
            }
        }
        Ok(Ok(self.commit(
            id,
            delivery,
            TicketTarget::Existing(number),
            kind,
            m.rule.as_str(),
            entry,
            files,
            notes,
            last,
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        id: u64,
        delivery: &postdesk_store::Delivery,
        target: TicketTarget,
        kind: EventKind,
        rule: &str,
        entry: Entry,
        files: &[AttachmentRef],
        notes: Vec<String>,
        last: bool,
    ) -> DeliveryCommit {
        DeliveryCommit {
            inbound: id,
            org: delivery.org.clone(),
            message_id: self.head.message_id.clone(),
            from: self.head.from.clone(),
            subject: self.head.subject.clone(),
            target,
            kind,
            by_staff: entry.by_staff,
            text: entry.text,
            attachments: files.to_vec(),
            automatic: self.class.automatic,
            participants: entry.participants,
            cc: entry.cc,
            rule: rule.to_string(),
            notes,
            visibility: entry.visibility,
            changes: entry.changes,
            last_delivery: last,
            held: entry.held,
            suspected_spoofing: entry.suspected_spoofing,
            imported: self.envelope.source == Source::Import,
            at: self.head.now,
        }
    }
}

/// The ticket entry a delivery makes, and what it changes.
struct Entry {
    by_staff: bool,
    held: bool,
    text: String,
    visibility: Visibility,
    changes: Vec<Change>,
    participants: Vec<String>,
    cc: Vec<String>,
    suspected_spoofing: bool,
}

impl Entry {
    /// Public `text` from an end user that changes nothing and widens nothing.
    fn public(text: String) -> Entry {
        Entry {
            by_staff: false,
            held: false,
            text,
            visibility: Visibility::Public,
            changes: Vec::new(),
            participants: Vec::new(),
            cc: Vec::new(),
            suspected_spoofing: false,
        }
    }
}
