//! Who hears of what, per event:
//! - a new ticket from a person's mail: an acknowledgement to the requester (not when its
//!   From is suspected forged), an alert to the assignee or else the owners, admins and
//!   managers;
//! - a ticket staff opened for someone: its first message to the requester (unless staff
//!   asked for no mail), and the same alert;
//! - a public staff reply: to the requester and CCs, from "Name via Org"; to the ticket's
//!   followers as a `reply_alert`;
//! - a reply by the requester or a CC: to the assignee, or all those staff if unassigned,
//!   and the followers;
//! - mail held from a non-participant: an alert to the same staff, to decide about it;
//! - an internal note: to the staff involved (the assignee and the followers);
//! - an assignment: an `assigned_alert` to the new assignee (while they still hold it);
//! - a ticket resolved or closed by staff: a `resolved_notice` to the requester, saying how
//!   to reopen it (answer the mail), once per time it is done; one auto-close closed after
//!   days without a reply: an `auto_closed_notice`; other field changes are silent;
//! - staff commands not understood or not allowed: back to that staff member;
//! - a monitor's alert: a `monitor_alert` to the assignee, or when there is none (or they
//!   left) the owners, admins and managers, when the monitor mails; the bell always.
//!
//! Staff hear only of tickets the policy lets them see, checked when the mail is planned
//! and again when it is sent. Never the author of the event, never automatic mail, never
//! our own addresses; machine mail is capped at `hourly_cap` per recipient per hour (a
//! person's relayed answer is not), monitor alerts at 60 per recipient per hour apart
//! from it.
//!
//! Mail that relays a person's message carries its files ([`CARRIES_FILES`]): a staff answer
//! to the requester and CCs, and the alerts that pass an end user's mail, a colleague's
//! answer or a note on to staff who may see the ticket. Held mail's files are not passed on
//! (nobody vouches for them yet: staff look at them on the ticket's page), and files never
//! reach end users except in a staff answer.

use crate::attachments::{prepare, EventFiles, Limits};
use crate::render::{
    acknowledgement, boundary_tag, framing, notification, notification_head, notification_texts,
    About, Acknowledgement, Notification,
};
use crate::NotifierError;
use postdesk_desk::policy;
use postdesk_store::{
    event_mail_key, BellItem, Change, DkimKeyRecord, Event, EventKind, MailFiles, Org, OutboxItem,
    OutboxStatus, Role, Status, Store, Ticket, Visibility, AUTO_CLOSE_AUTHOR, MONITOR_ALERT_KIND,
};
use time::OffsetDateTime;

pub(crate) struct Planner<'a> {
    pub store: &'a Store,
    /// Key of reply tokens.
    pub secret: [u8; 32],
    /// Key of outbound Message-IDs.
    pub message_id_secret: [u8; 32],
    /// Key of one-click unsubscribe links.
    pub unsubscribe_secret: [u8; 32],
    pub hourly_cap: usize,
    /// Largest outbound mail, files included; files that do not fit are named instead.
    pub max_message_bytes: u64,
    /// The web UI's base URL, for links to a ticket's page in staff mail and (when https)
    /// one-click unsubscribe links; empty = none.
    pub public_url: String,
}

/// Mail that carries the event's files: it relays a participant's message.
pub(crate) const CARRIES_FILES: [&str; 4] = [
    "staff_answer",
    "new_ticket_alert",
    "reply_alert",
    "note_alert",
];

/// Mail that tells staff about a ticket: sent only to staff the policy lets see it.
pub(crate) const STAFF_ALERTS: [&str; 6] = [
    "new_ticket_alert",
    "reply_alert",
    "held_alert",
    "note_alert",
    "assigned_alert",
    MONITOR_ALERT_KIND,
];

/// Monitor alerts per recipient per hour. They have a cap of their own, apart from the
/// other automatic mail's (`hourly_cap`, against loops): caused by time passing, an alert
/// cannot loop, but an organization whose every ticket matches a monitor at once (or a
/// stranger who opens many tickets) must not bury a person in mail. Past it, the alert is
/// in the bell and in the desk's alert filter, not in the mailbox.
const MONITOR_ALERT_HOURLY_CAP: usize = 60;

/// Whether `recipient` is a staff member who may see `ticket` (and so may hear of it).
pub(crate) fn may_hear_of(
    store: &Store,
    recipient: &str,
    ticket: &Ticket,
) -> Result<bool, NotifierError> {
    Ok(store
        .staff(recipient)?
        .is_some_and(|s| policy::can_view_ticket(&s, ticket)))
}

/// Store reads shared by every mail one event causes.
struct Shared {
    /// Message-IDs of the ticket's thread up to the event, oldest first.
    thread: Vec<String>,
    author_name: String,
    dkim_key: Option<DkimKeyRecord>,
    /// The event's files as its mails of one kind carry them (worked out at the first).
    files: Option<EventFiles>,
}

/// One mail to plan.
struct Draft {
    recipient: String,
    kind: &'static str,
    /// Counted against the hourly cap of automatic mail.
    automatic: bool,
    /// Meant for the event's author (the one exception to "never the author").
    to_author: bool,
}

/// Whether automatic mail of `kind` is something its recipient may turn off: all of it but
/// the answer to rejected commands, which answers the recipient's own mail.
fn can_opt_out(kind: &str) -> bool {
    kind != "commands_rejected"
}

impl Planner<'_> {
    /// The mail one event causes; `already` holds what this batch planned before it.
    pub fn plan(
        &self,
        event: &Event,
        already: &[OutboxItem],
    ) -> Result<Vec<OutboxItem>, NotifierError> {
        // Imported history mails no one.
        if event.automatic || event.imported || event.kind == EventKind::DeliveryReport {
            return Ok(Vec::new());
        }
        let Some(ticket) = self.store.ticket(event.ticket)? else {
            return Ok(Vec::new());
        };
        let Some(org) = self.store.org(&ticket.org)? else {
            return Ok(Vec::new());
        };
        let drafts = self.drafts(event, &ticket)?;
        // Read once per event, and only when some mail is going out.
        let mut shared: Option<Shared> = None;
        let mut out = Vec::new();
        let now = OffsetDateTime::now_utc();
        for d in drafts {
            if (d.recipient == event.author && !d.to_author)
                || !d.recipient.contains('@')
                || self.store.org_for_address(&d.recipient)?.is_some()
                || out.iter().any(|i: &OutboxItem| i.recipient == d.recipient)
                || (STAFF_ALERTS.contains(&d.kind)
                    && !may_hear_of(self.store, &d.recipient, &ticket)?)
            {
                continue;
            }
            if d.automatic && !self.wants_automatic_mail(&d.recipient, d.kind)? {
                continue;
            }
            if d.automatic {
                // Monitor alerts and the rest have a cap each: neither uses up the other's.
                let alert = d.kind == MONITOR_ALERT_KIND;
                let hour_ago = now - time::Duration::hours(1);
                let (sent, cap) = if alert {
                    (
                        self.store.monitor_alert_count(&d.recipient, hour_ago)?,
                        MONITOR_ALERT_HOURLY_CAP,
                    )
                } else {
                    (
                        self.store.automatic_mail_count(&d.recipient, hour_ago)?,
                        self.hourly_cap,
                    )
                };
                let recent = sent
                    + already
                        .iter()
                        .chain(out.iter())
                        .filter(|i| {
                            i.recipient == d.recipient && (i.kind == MONITOR_ALERT_KIND) == alert
                        })
                        .count();
                if recent >= cap {
                    tracing::warn!(recipient = %d.recipient, ticket = ticket.number, kind = d.kind, "hourly cap of automatic mail reached; not sent (the bell has it)");
                    continue;
                }
            }
            let shared = match &mut shared {
                Some(c) => c,
                None => shared.insert(self.shared(event, &ticket, &org)?),
            };
            if let Some(item) = self.render(event, &ticket, &org, shared, &d, now)? {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Who is told of a field change, and by which kind of mail: the new assignee, while
    /// they still hold the ticket; the requester (an end user) of a ticket staff resolved or
    /// closed, while it is still done. `closed_at` is when the ticket last became done, so
    /// it equals this event's time only if this change made it so: resolved then closed
    /// tells the requester once. Every other change is silent.
    fn told_of_change(
        &self,
        event: &Event,
        ticket: &Ticket,
    ) -> Result<Option<(String, &'static str)>, NotifierError> {
        Ok(match &event.change {
            Some(Change::Assignee(Some(to))) if ticket.assignee.as_ref() == Some(to) => {
                Some((to.clone(), "assigned_alert"))
            }
            Some(Change::Status(Status::Resolved | Status::Closed))
                if event.by_staff
                    && ticket.closed_at == Some(event.at)
                    && self.store.staff(&ticket.requester)?.is_none() =>
            {
                Some((ticket.requester.clone(), "resolved_notice"))
            }
            // Closed for want of a reply: told while it stays closed.
            Some(Change::Status(Status::Closed))
                if event.author == AUTO_CLOSE_AUTHOR
                    && ticket.status == Status::Closed
                    && self.store.staff(&ticket.requester)?.is_none() =>
            {
                Some((ticket.requester.clone(), "auto_closed_notice"))
            }
            _ => None,
        })
    }

    /// Per-user opt-out: staff alerts and end users' automatic mail.
    fn wants_automatic_mail(&self, recipient: &str, kind: &str) -> Result<bool, NotifierError> {
        if !can_opt_out(kind) {
            return Ok(true);
        }
        Ok(match self.store.staff(recipient)? {
            Some(staff) => staff.alerts,
            None => self.store.contact_alerts(recipient)?,
        })
    }

    /// The staff bell entries an event makes, whatever the recipients' mail setting, never
    /// for the author: new tickets, end users' replies and notes reach the same staff as
    /// alert mails; a colleague's public answer reaches the followers; an assignment, the
    /// new assignee.
    pub fn bell(&self, event: &Event) -> Result<Vec<BellItem>, NotifierError> {
        // Imported history rings no bell.
        if event.imported {
            return Ok(Vec::new());
        }
        let Some(ticket) = self.store.ticket(event.ticket)? else {
            return Ok(Vec::new());
        };
        let (n, summary, author) = (ticket.number, &ticket.summary, &event.author);
        let (staff, text) = match (event.kind, event.visibility) {
            (EventKind::Created, _) if !event.automatic => (
                self.staff_alert_list(&ticket)?,
                format!("{author} opened #{n} {summary}"),
            ),
            (EventKind::Reply, _) if event.held => (
                self.staff_alert_list(&ticket)?,
                format!("{author} (not a participant) wrote on #{n} {summary}"),
            ),
            (EventKind::Reply, Visibility::Public) if event.by_staff && !event.automatic => (
                self.visible_to(ticket.followers.clone(), &ticket)?,
                format!("{author} answered on #{n} {summary}"),
            ),
            (EventKind::Reply, _) if !event.by_staff && !event.automatic => (
                self.staff_alert_list(&ticket)?,
                format!("{author} replied on #{n} {summary}"),
            ),
            (EventKind::Note, _) => (
                self.staff_alert_list(&ticket)?,
                format!("{author} wrote a note on #{n} {summary}"),
            ),
            (EventKind::Alert, _) => (
                self.assignee_or_managers(&ticket)?,
                format!(
                    "#{n} {summary} is {}",
                    event.monitor.map(|m| m.describe()).unwrap_or_default()
                ),
            ),
            (EventKind::Update, _) if !event.automatic => {
                match self.told_of_change(event, &ticket)? {
                    Some((to, "assigned_alert")) => (
                        self.visible_to(vec![to], &ticket)?,
                        format!("{author} assigned #{n} to you: {summary}"),
                    ),
                    _ => return Ok(Vec::new()),
                }
            }
            _ => return Ok(Vec::new()),
        };
        let text = text.chars().take(200).collect::<String>();
        Ok(staff
            .into_iter()
            .filter(|s| s != author)
            .map(|staff| BellItem {
                staff,
                event: event.seq,
                ticket: n,
                text: text.clone(),
                read: false,
                at: event.at,
            })
            .collect())
    }

    /// Those of `people` the policy lets see `ticket`.
    fn visible_to(
        &self,
        people: Vec<String>,
        ticket: &Ticket,
    ) -> Result<Vec<String>, NotifierError> {
        let mut allowed = Vec::with_capacity(people.len());
        for who in people {
            if may_hear_of(self.store, &who, ticket)? {
                allowed.push(who);
            }
        }
        Ok(allowed)
    }

    /// The assignee (else, or when the assignee is no longer staff, the owners, admins
    /// and managers), and the ticket's followers: those of them the policy lets see it.
    fn staff_alert_list(&self, ticket: &Ticket) -> Result<Vec<String>, NotifierError> {
        let mut list = self.assignee_or_managers(ticket)?;
        for f in &ticket.followers {
            if !list.contains(f) && may_hear_of(self.store, f, ticket)? {
                list.push(f.clone());
            }
        }
        Ok(list)
    }

    /// The assignee, or when there is none (or they are no longer staff) the owners,
    /// admins and managers: those of them the policy lets see the ticket.
    fn assignee_or_managers(&self, ticket: &Ticket) -> Result<Vec<String>, NotifierError> {
        let assignee = match &ticket.assignee {
            Some(a) => self.store.staff(a)?,
            None => None,
        };
        let list = match assignee {
            Some(a) => vec![a.email],
            None => self
                .store
                .staff_list()?
                .into_iter()
                .filter(|s| matches!(s.role, Role::Owner | Role::Admin | Role::Manager))
                .map(|s| s.email)
                .collect(),
        };
        self.visible_to(list, ticket)
    }

    fn drafts(&self, event: &Event, ticket: &Ticket) -> Result<Vec<Draft>, NotifierError> {
        let mut drafts = Vec::new();
        let people = |kind, automatic, list: Vec<String>| {
            list.into_iter().map(move |recipient| Draft {
                recipient,
                kind,
                automatic,
                to_author: false,
            })
        };
        match (event.kind, event.visibility) {
            (EventKind::Created, _) if event.by_staff => {
                // Opened by staff for someone: the requester gets the first message as a
                // staff answer (threaded, with a reply address), unless staff asked not.
                if !event.quiet {
                    drafts.extend(people(
                        "staff_answer",
                        false,
                        vec![ticket.requester.clone()],
                    ));
                }
                drafts.extend(people(
                    "new_ticket_alert",
                    true,
                    self.staff_alert_list(ticket)?,
                ));
            }
            (EventKind::Created, _) => {
                // An end user's request, by mail or in the portal (a guest's placeholder
                // requester has no address and is dropped below). A From suspected forged
                // gets nothing back: it would be backscatter to whoever was impersonated.
                if !ticket.automatic && !event.suspected_spoofing {
                    drafts.push(Draft {
                        recipient: ticket.requester.clone(),
                        kind: "acknowledgement",
                        automatic: true,
                        // The acknowledgement answers the author: the one other exception.
                        to_author: true,
                    });
                }
                drafts.extend(people(
                    "new_ticket_alert",
                    true,
                    self.staff_alert_list(ticket)?,
                ));
            }
            (EventKind::Reply, Visibility::Public) if event.by_staff => {
                let mut to = vec![ticket.requester.clone()];
                to.extend(ticket.cc.iter().cloned());
                drafts.extend(people("staff_answer", false, to));
                // Followers read a colleague's answer as an alert: they are staff who asked
                // to hear of the ticket, not part of the conversation with the requester.
                drafts.extend(people("reply_alert", true, ticket.followers.clone()));
            }
            (EventKind::Reply, Visibility::Public) => {
                drafts.extend(people("reply_alert", true, self.staff_alert_list(ticket)?));
            }
            (EventKind::Reply, Visibility::Internal) if event.held => {
                drafts.extend(people("held_alert", true, self.staff_alert_list(ticket)?));
            }
            (EventKind::Reply | EventKind::Note, Visibility::Internal) => {
                let mut to: Vec<String> = ticket.assignee.iter().cloned().collect();
                to.extend(ticket.followers.iter().cloned());
                drafts.extend(people("note_alert", true, to));
            }
            (EventKind::Update, _) => {
                if let Some((recipient, kind)) = self.told_of_change(event, ticket)? {
                    drafts.extend(people(kind, true, vec![recipient]));
                }
            }
            (EventKind::Alert, _) if event.monitor.is_some_and(|m| m.email) => {
                drafts.extend(people(
                    MONITOR_ALERT_KIND,
                    true,
                    self.assignee_or_managers(ticket)?,
                ));
            }
            (EventKind::CommandsRejected, _) => drafts.push(Draft {
                recipient: event.author.clone(),
                kind: "commands_rejected",
                automatic: true,
                to_author: true,
            }),
            _ => {}
        }
        Ok(drafts)
    }

    /// `recipient`'s one-click unsubscribe link (RFC 8058), when the web UI's address is
    /// https (RFC 8058 asks for it; the fallback to the listening address is plain http,
    /// which no provider outside could reach anyway).
    fn unsubscribe_link(&self, recipient: &str) -> Option<String> {
        self.public_url.starts_with("https://").then(|| {
            format!(
                "{}/unsubscribe/{}",
                self.public_url.trim_end_matches('/'),
                postdesk_threading::make_unsubscribe_token(&self.unsubscribe_secret, recipient)
            )
        })
    }

    /// What every mail about `event` needs from the store.
    fn shared(&self, event: &Event, ticket: &Ticket, org: &Org) -> Result<Shared, NotifierError> {
        Ok(Shared {
            // Only the public conversation: held and internal mail's ids are not for
            // anyone outside to see in References.
            thread: self
                .store
                .events_for(ticket.number)?
                .iter()
                .filter(|e| e.seq <= event.seq && e.visibility == Visibility::Public && !e.held)
                .filter_map(|e| e.message_id.clone())
                .collect(),
            author_name: self
                .store
                .staff(&event.author)?
                .map(|s| s.name)
                .unwrap_or_else(|| event.author.clone()),
            dkim_key: self.store.dkim_key(&org.slug)?,
            files: None,
        })
    }

    /// Where the files left out of a mail of `kind` are: staff have the ticket's page, an
    /// end user asks by answering.
    fn files_hint(&self, kind: &str, ticket: &Ticket) -> String {
        match (kind, self.public_url.is_empty()) {
            ("staff_answer", _) => "Reply to this mail if you need them.".into(),
            (_, true) => format!("They are on ticket #{}'s page in the desk.", ticket.number),
            (_, false) => format!(
                "They are on the ticket's page: {}/desk/tickets/{}",
                self.public_url.trim_end_matches('/'),
                ticket.number
            ),
        }
    }

    fn render(
        &self,
        event: &Event,
        ticket: &Ticket,
        org: &Org,
        shared: &mut Shared,
        draft: &Draft,
        now: OffsetDateTime,
    ) -> Result<Option<OutboxItem>, NotifierError> {
        let Some(org_address) = org.addresses.first() else {
            return Ok(None);
        };
        let recipient = draft.recipient.clone();
        let reply_to =
            postdesk_threading::reply_address(&self.secret, ticket.number, org_address, &recipient);
        let thread = &shared.thread;
        let author_name = &shared.author_name;
        // Staff told that they may not change a ticket learn nothing more of it.
        let summary = if draft.kind == "commands_rejected"
            && self.store.staff(&recipient)?.is_some()
            && !may_hear_of(self.store, &recipient, ticket)?
        {
            "(a ticket you may not see)"
        } else {
            ticket.summary.as_str()
        };
        let domain = org.mail_domain();
        // Mail the recipient may turn off carries the one-click way to.
        let unsubscribe = (draft.automatic && can_opt_out(draft.kind))
            .then(|| self.unsubscribe_link(&recipient))
            .flatten();
        let unsubscribe = unsubscribe.as_deref();
        let mut files = MailFiles::default();
        let (message_id, raw) = if draft.kind == "acknowledgement" {
            let (mid, raw) = acknowledgement(&Acknowledgement {
                secret: &self.message_id_secret,
                number: ticket.number,
                event: event.seq,
                summary: &ticket.summary,
                org_name: &org.name,
                org_address,
                recipient: &recipient,
                reply_to: &reply_to,
                thread,
                unsubscribe,
            })?;
            (mid, signed(raw, shared.dkim_key.as_ref(), domain)?)
        } else {
            let framing = framing(
                draft.kind,
                &About {
                    event,
                    ticket,
                    author_name,
                    org_name: &org.name,
                },
            );
            let n = Notification {
                secret: &self.message_id_secret,
                number: ticket.number,
                event: event.seq,
                summary,
                org_name: &org.name,
                org_address,
                from_name: &framing.from_name,
                recipient: &recipient,
                reply_to: &reply_to,
                thread,
                intro: &framing.intro,
                body: framing.body.as_deref().unwrap_or(&event.text),
                auto_submitted: framing.auto_submitted,
                unsubscribe,
            };
            let kind = CARRIES_FILES.iter().find(|k| **k == draft.kind);
            match kind.filter(|_| !event.attachments.is_empty()) {
                Some(kind) => {
                    // Worked out once for every recipient of this kind of mail.
                    let carried = match shared.files.take() {
                        Some(f) if f.kind == *kind => f,
                        _ => {
                            let tag = boundary_tag(&self.message_id_secret, event.seq, kind);
                            let hint = self.files_hint(kind, ticket);
                            let limits = Limits {
                                max_bytes: self.max_message_bytes,
                                hint: &hint,
                                tag: &tag,
                            };
                            prepare(self.store, kind, &event.attachments, &limits, |note| {
                                notification_texts(&n, note)
                            })?
                        }
                    };
                    let (mid, head, mail_files) =
                        with_files(&n, &carried, shared.dkim_key.as_ref(), domain)?;
                    shared.files = Some(carried);
                    files = mail_files;
                    (mid, head)
                }
                None => {
                    let (text, html) = notification_texts(&n, "")?;
                    let (mid, raw) = notification(&n, text, html)?;
                    (mid, signed(raw, shared.dkim_key.as_ref(), domain)?)
                }
            }
        };
        Ok(Some(OutboxItem {
            key: event_mail_key(event.seq, &recipient),
            event: event.seq,
            ticket: ticket.number,
            org: org.slug.clone(),
            recipient,
            kind: draft.kind.to_string(),
            message_id,
            raw,
            files,
            status: OutboxStatus::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            created_at: now,
        }))
    }
}

/// `raw` signed when the organization has a DKIM key.
fn signed(
    raw: Vec<u8>,
    key: Option<&DkimKeyRecord>,
    domain: &str,
) -> Result<Vec<u8>, NotifierError> {
    match key {
        Some(key) => crate::sign(&raw, key, domain),
        None => Ok(raw),
    }
}

/// One recipient's mail of an event with files: its Message-ID, its header (signed over
/// the whole mail), and what it carries: the shared body by reference and the signed mail
/// without the files. When no file fits, the header is that whole mail without them.
fn with_files(
    n: &Notification<'_>,
    files: &EventFiles,
    key: Option<&DkimKeyRecord>,
    domain: &str,
) -> Result<(String, Vec<u8>, MailFiles), NotifierError> {
    let (text, html) = files.without.clone();
    let (mid, whole) = notification(n, text, html)?;
    let whole = signed(whole, key, domain)?;
    let Some((body, sha256)) = &files.body else {
        let named = MailFiles {
            left_out: files.left_out.clone(),
            ..MailFiles::default()
        };
        return Ok((mid, whole, named));
    };
    let (mid, mut head) = notification_head(n, &body.content_type)?;
    if let Some(key) = key {
        let mut full = Vec::with_capacity(head.len() + body.bytes.len());
        full.extend_from_slice(&head);
        full.extend_from_slice(&body.bytes);
        let mut field = crate::dkim::signature_field(&full, key, domain)?;
        drop(full);
        field.extend_from_slice(&head);
        head = field;
    }
    let carried = MailFiles {
        body: Some(sha256.clone()),
        attached: files.attached.clone(),
        left_out: files.left_out.clone(),
        without_files: Some(whole),
    };
    Ok((mid, head, carried))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
