//! Tickets and the event log: the one transaction that applies an inbound delivery, the
//! Message-ID index used for threading and dedup, the decision log, and consumer cursors.

use crate::codec::{decode, encode, key_num, num_key, read_counter, read_u64};
use crate::deletion::{blobuse_key, duplicate_key, inbounduse_key};
use crate::{
    AttachmentRef, Decision, Event, EventKind, Outcome, Priority, Status, Store, StoreError,
    Ticket, TicketType, Visibility,
};
use sled::transaction::{ConflictableTransactionError::Abort, TransactionalTree};
use time::OffsetDateTime;

/// Message-IDs are compared without angle brackets and surrounding space.
pub fn normalize_message_id(mid: &str) -> String {
    mid.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// Where a delivery goes.
#[derive(Debug, Clone)]
pub enum TicketTarget {
    Existing(u64),
    New {
        ticket_type: TicketType,
        summary: String,
        requester: String,
        automatic: bool,
    },
}

/// Everything the pipeline decided about one delivery of one inbound message, applied
/// atomically by [`Store::commit_delivery`].
#[derive(Debug, Clone)]
pub struct DeliveryCommit {
    pub inbound: u64,
    pub org: String,
    pub message_id: Option<String>,
    pub from: String,
    pub subject: String,
    pub target: TicketTarget,
    pub kind: EventKind,
    pub by_staff: bool,
    pub text: String,
    pub attachments: Vec<AttachmentRef>,
    pub automatic: bool,
    /// Addresses that now take part in the ticket (sender, other recipients).
    pub participants: Vec<String>,
    /// Addresses copied on the mail, added to the ticket's CC list.
    pub cc: Vec<String>,
    pub rule: String,
    pub notes: Vec<String>,
    /// Public reply, or an internal note (staff `#note`).
    pub visibility: Visibility,
    /// Field changes (staff mail commands), each appended as an `Update` event.
    pub changes: Vec<crate::Change>,
    /// This is the message's last delivery: the spool marker goes with it.
    pub last_delivery: bool,
    /// From a non-participant: an internal entry that changes nothing (see `Event::held`).
    pub held: bool,
    /// The From may be forged (see `Event::suspected_spoofing`).
    pub suspected_spoofing: bool,
    pub at: OffsetDateTime,
}

/// Most addresses a ticket's CC list grows to from mail; staff may set more by hand.
pub const MAX_TICKET_CC: usize = 50;
/// Most addresses kept in a ticket's list of everyone who wrote or was written to.
pub const MAX_PARTICIPANTS: usize = 200;

/// One write the pipeline decided for a message: a delivery into a ticket, or a decision
/// that changes no ticket (a refusal). Committed in order by [`Store::commit_pipeline`].
#[derive(Debug, Clone)]
pub enum PipelineWrite {
    Delivery(DeliveryCommit),
    Decision {
        decision: Decision,
        /// This is the message's last delivery: the spool marker goes with it.
        last_delivery: bool,
    },
}

/// Filters for the ticket list; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub org: Option<String>,
    pub status: Option<Status>,
    pub ticket_type: Option<TicketType>,
}

pub(crate) fn decision_key(inbound: u64, org: &str) -> Vec<u8> {
    let mut k = num_key("decision/", inbound);
    k.extend_from_slice(org.as_bytes());
    k
}

/// The recency index: `tupd/<updated_at ns><number>`, so lists read newest first without
/// loading every ticket.
pub(crate) fn recency_key(t: &Ticket) -> Vec<u8> {
    let ns = u64::try_from(t.updated_at.unix_timestamp_nanos()).unwrap_or(0);
    let mut k = num_key("tupd/", ns);
    k.extend_from_slice(&t.number.to_be_bytes());
    k
}

/// The Message-ID index of an organization: see [`mid_entry`] for what it holds.
pub(crate) fn mid_key(org: &str, mid: &str) -> String {
    format!("mid/{org}/{mid}")
}

/// A received Message-ID's entry: its ticket, the inbound message that brought it first
/// and that message's sender, who owns the id for threading. One key, written once per
/// new message: keys named by Message-IDs land in random places of the tree, and each
/// costs the store's write lock a page of its own, so what belongs to one id stays in one.
pub(crate) fn mid_entry(ticket: u64, inbound: u64, from: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + from.len());
    v.extend_from_slice(&ticket.to_be_bytes());
    v.extend_from_slice(&inbound.to_be_bytes());
    v.extend_from_slice(from.as_bytes());
    v
}

/// `entry` (a [`mid_entry`] or a ticket-only one) pointing at another ticket, its origin kept.
pub(crate) fn moved_mid_entry(entry: &[u8], ticket: u64) -> Vec<u8> {
    let mut v = ticket.to_be_bytes().to_vec();
    v.extend_from_slice(entry.get(8..).unwrap_or_default());
    v
}

/// The ticket of a [`mid_entry`], or of an entry holding the ticket alone (our own
/// outbound ids, and ids stored before entries held more).
pub(crate) fn mid_ticket(v: &[u8]) -> Option<u64> {
    v.get(..8).and_then(read_u64)
}

/// The inbound message and sender of a [`mid_entry`]; `None` for a ticket-only entry.
pub(crate) fn mid_origin(v: &[u8]) -> Option<(u64, &str)> {
    let inbound = v.get(8..16).and_then(read_u64)?;
    Some((inbound, std::str::from_utf8(v.get(16..)?).ok()?))
}

/// Where stores before [`mid_entry`] kept who first sent a Message-ID; read, never written.
pub(crate) fn midfrom_key(org: &str, mid: &str) -> String {
    format!("midfrom/{org}/{mid}")
}

/// The ticket another sender's mail with an id someone else owns went to: what makes that
/// sender's retry a duplicate (the owner's retry is recognised by the [`mid_entry`]).
pub(crate) fn midby_key(org: &str, mid: &str, from: &str) -> String {
    format!("{}{from}", midby_prefix(org, mid))
}

/// Where every sender's [`midby_key`] of one Message-ID begins.
pub(crate) fn midby_prefix(org: &str, mid: &str) -> String {
    format!("midby/{org}/{mid}\0")
}

/// Marks a Message-ID as one of ours (outbound): delivery reports attach only about those.
pub(crate) fn ourmid_key(org: &str, mid: &str) -> String {
    format!("ourmid/{org}/{mid}")
}

pub(crate) fn bump(
    tx: &TransactionalTree,
    key: &str,
) -> Result<u64, sled::transaction::UnabortableTransactionError> {
    let n = read_counter(tx.get(key.as_bytes())?) + 1;
    tx.insert(key.as_bytes(), &n.to_be_bytes())?;
    Ok(n)
}

/// The transaction body of [`Store::commit_delivery`].
fn apply_delivery(
    tx: &TransactionalTree,
    c: &DeliveryCommit,
) -> sled::transaction::ConflictableTransactionResult<Decision, StoreError> {
    let mid = c.message_id.as_deref().map(normalize_message_id);
    let dkey = decision_key(c.inbound, &c.org);
    if let Some(done) = tx.get(&dkey)? {
        let d: Decision = decode(&done).map_err(Abort)?;
        if c.last_delivery {
            tx.remove(num_key("pending/", c.inbound))?;
        }
        return Ok(d);
    }
    let mut decision = Decision {
        inbound: c.inbound,
        org: c.org.clone(),
        message_id: mid.clone(),
        from: c.from.clone(),
        subject: c.subject.clone(),
        outcome: Outcome::Refused {
            reason: String::new(),
        },
        notes: c.notes.clone(),
        at: c.at,
    };
    // The first sender of a Message-ID owns it: the same id from the same sender again is
    // a duplicate (a retry, SMTP and IMAP overlap); from another sender it is a message of
    // its own, so nobody who learns an id early can make the real mail vanish.
    let mut owns_mid = mid.is_some();
    if let Some(m) = &mid {
        // The same sender's mail with this id, or an id seen before senders were kept
        // (older stores, our own outbound ids): a duplicate.
        let seen = match tx.get(midby_key(&c.org, m, &c.from).as_bytes())? {
            Some(t) => mid_ticket(&t),
            None => match tx.get(mid_key(&c.org, m).as_bytes())? {
                Some(entry) => {
                    let owner = match mid_origin(&entry) {
                        Some((_, from)) => Some(from.to_string()),
                        None => tx
                            .get(midfrom_key(&c.org, m).as_bytes())?
                            .map(|f| String::from_utf8_lossy(&f).into_owned()),
                    };
                    if owner.is_none_or(|o| o == c.from) {
                        mid_ticket(&entry)
                    } else {
                        owns_mid = false;
                        decision.notes.push(
                            "another sender used this Message-ID first; kept as a message of its own"
                                .into(),
                        );
                        None
                    }
                }
                None => None,
            },
        };
        if let Some(ticket) = seen {
            decision.outcome = Outcome::Duplicate { ticket };
            tx.insert(dkey, encode(&decision).map_err(Abort)?)?;
            // The ticket answers for this original too: it goes when the ticket does.
            tx.insert(duplicate_key(ticket, c.inbound), &[])?;
            if c.last_delivery {
                tx.remove(num_key("pending/", c.inbound))?;
            }
            return Ok(decision);
        }
    }
    let (mut ticket, new_ticket): (Ticket, bool) = match &c.target {
        TicketTarget::Existing(n) => {
            let t = tx
                .get(num_key("ticket/", *n))?
                .ok_or_else(|| Abort(StoreError::NotFound(format!("ticket {n}"))))?;
            (decode::<Ticket>(&t).map_err(Abort)?, false)
        }
        TicketTarget::New {
            ticket_type,
            summary,
            requester,
            automatic,
        } => {
            let t = new_ticket(tx, &c.org, *ticket_type, summary, requester, c.at)?;
            (
                Ticket {
                    automatic: *automatic,
                    ..t
                },
                true,
            )
        }
    };
    let before = (!new_ticket).then(|| ticket.clone());
    // A held mail widens nothing: who takes part and who is copied stay as they were.
    if !c.held {
        for p in &c.participants {
            if ticket.participants.len() < MAX_PARTICIPANTS && !ticket.participants.contains(p) {
                ticket.participants.push(p.clone());
            }
        }
        for p in &c.cc {
            if ticket.cc.len() < MAX_TICKET_CC && !ticket.cc.contains(p) && *p != ticket.requester {
                ticket.cc.push(p.clone());
            }
        }
    }
    // A person writing back reopens a ticket that was waiting or done.
    if !new_ticket
        && !c.held
        && !c.by_staff
        && !c.automatic
        && c.kind == EventKind::Reply
        && ticket.status != Status::Open
    {
        ticket.status = Status::Open;
    }
    ticket.updated_at = c.at;
    let seq = bump(tx, "counter/event")?;
    let event = Event {
        seq,
        ticket: ticket.number,
        kind: c.kind,
        author: c.from.clone(),
        by_staff: c.by_staff,
        visibility: c.visibility,
        text: c.text.clone(),
        message_id: mid.clone(),
        attachments: c.attachments.clone(),
        inbound: Some(c.inbound),
        automatic: c.automatic,
        change: None,
        held: c.held,
        suspected_spoofing: c.suspected_spoofing,
        quiet: false,
        at: c.at,
    };
    append_event(tx, &event)?;
    // Commands come after the text they arrived with, one event each.
    for change in &c.changes {
        append_change(tx, &mut ticket, change, &event)?;
    }
    save_ticket(tx, before.as_ref(), &ticket)?;
    // Mail whose From may be forged takes no hold on its Message-ID: a forgery sent first
    // with someone's id would otherwise make their real mail a duplicate of it.
    if let Some(m) = mid.as_ref().filter(|_| !c.suspected_spoofing) {
        if owns_mid {
            let entry = mid_entry(ticket.number, c.inbound, &c.from);
            tx.insert(mid_key(&c.org, m).as_bytes(), entry)?;
        } else {
            let by = midby_key(&c.org, m, &c.from);
            tx.insert(by.as_bytes(), &ticket.number.to_be_bytes())?;
        }
    }
    decision.outcome = Outcome::Accepted {
        ticket: ticket.number,
        new_ticket,
        rule: c.rule.clone(),
    };
    tx.insert(dkey, encode(&decision).map_err(Abort)?)?;
    if c.last_delivery {
        tx.remove(num_key("pending/", c.inbound))?;
    }
    Ok(decision)
}

/// Records a delivery that made no ticket change (refused, unparseable) so it is visible;
/// the first decision recorded for a delivery stands.
fn apply_decision(
    tx: &TransactionalTree,
    d: &Decision,
    last_delivery: bool,
) -> sled::transaction::ConflictableTransactionResult<(), StoreError> {
    let dkey = decision_key(d.inbound, &d.org);
    if tx.get(&dkey)?.is_none() {
        tx.insert(dkey, encode(d).map_err(Abort)?)?;
    }
    if last_delivery {
        tx.remove(num_key("pending/", d.inbound))?;
    }
    Ok(())
}

/// The count of tickets of one organization, type and status.
pub(crate) fn count_key(t: &Ticket) -> String {
    format!(
        "tcount/{}/{}/{}",
        t.org,
        t.ticket_type.as_str(),
        t.status.as_str()
    )
}

/// Tickets of an organization opened or closed on one day (UTC), for the dashboard chart.
fn daily_key(org: &str, day: time::Date, what: &str) -> String {
    format!("daily/{org}/{day}/{what}")
}

/// The index of a ticket by its requester and by its assignee.
pub(crate) fn person_keys(t: &Ticket) -> Vec<Vec<u8>> {
    let key = |prefix: &str, email: &str| {
        let mut k = format!("{prefix}/{email}\0").into_bytes();
        k.extend_from_slice(&t.number.to_be_bytes());
        k
    };
    let mut keys = vec![key("byrequester", &t.requester)];
    if let Some(a) = &t.assignee {
        keys.push(key("byassignee", a));
    }
    keys
}

/// A day as `Date`'s Display writes it: `YYYY-MM-DD`.
fn parse_day(text: &str) -> Option<time::Date> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month = time::Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
    let day = parts.next()?.parse().ok()?;
    time::Date::from_calendar_date(year, month, day).ok()
}

fn is_done(s: Status) -> bool {
    matches!(s, Status::Resolved | Status::Closed)
}

/// Writes a ticket with its indexes: the recency index, the counts by organization, type
/// and status, and the per-day opened/closed counts (`closed_at` is kept here too).
/// `before` is the ticket as stored until now (`None` for a new one).
pub(crate) fn save_ticket(
    tx: &TransactionalTree,
    before: Option<&Ticket>,
    after: &Ticket,
) -> Result<(), sled::transaction::ConflictableTransactionError<StoreError>> {
    let mut after = after.clone();
    let was_done = before.is_some_and(|b| is_done(b.status));
    if is_done(after.status) && !was_done {
        after.closed_at = Some(after.updated_at);
        bump(
            tx,
            &daily_key(&after.org, after.updated_at.date(), "closed"),
        )?;
    } else if !is_done(after.status) {
        after.closed_at = None;
    }
    // Who a ticket belongs to, for "assigned to me" and "raised by me" without a scan.
    if let Some(b) = before {
        for k in person_keys(b) {
            tx.remove(k)?;
        }
    }
    for k in person_keys(&after) {
        tx.insert(k, &[])?;
    }
    match before {
        Some(b) => {
            tx.remove(recency_key(b))?;
            let k = count_key(b);
            let n = read_counter(tx.get(k.as_bytes())?).saturating_sub(1);
            tx.insert(k.as_bytes(), &n.to_be_bytes())?;
        }
        None => {
            bump(
                tx,
                &daily_key(&after.org, after.created_at.date(), "opened"),
            )?;
        }
    }
    tx.insert(recency_key(&after), &[])?;
    bump(tx, &count_key(&after))?;
    tx.insert(
        num_key("ticket/", after.number),
        encode(&after).map_err(Abort)?,
    )?;
    Ok(())
}

/// The ticket's event index: `tev/<ticket><seq>`, in log order.
pub(crate) fn tev_key(ticket: u64, seq: u64) -> Vec<u8> {
    let mut k = num_key("tev/", ticket);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Appends `event` to the log and to its ticket's event index.
pub(crate) fn append_event(
    tx: &TransactionalTree,
    event: &Event,
) -> Result<(), sled::transaction::ConflictableTransactionError<StoreError>> {
    tx.insert(num_key("ev/", event.seq), encode(event).map_err(Abort)?)?;
    tx.insert(tev_key(event.ticket, event.seq), &[])?;
    for a in &event.attachments {
        tx.insert(blobuse_key(&a.sha256, event.ticket), &[])?;
    }
    if let Some(inbound) = event.inbound {
        tx.insert(inbounduse_key(inbound, event.ticket), &[])?;
    }
    Ok(())
}

/// Applies a field change to the ticket and appends it as an `Update` event like `base`.
pub(crate) fn append_change(
    tx: &TransactionalTree,
    ticket: &mut Ticket,
    change: &crate::Change,
    base: &Event,
) -> Result<Event, sled::transaction::ConflictableTransactionError<StoreError>> {
    match change {
        crate::Change::Status(s) => ticket.status = *s,
        crate::Change::Assignee(a) => ticket.assignee = a.clone(),
        crate::Change::Priority(p) => ticket.priority = *p,
        crate::Change::Due(d) => ticket.due = d.clone(),
        crate::Change::Contact(c) => ticket.requester = c.clone(),
        crate::Change::Type(t) => ticket.ticket_type = *t,
        crate::Change::Category(c) => ticket.category = c.clone(),
        crate::Change::Cc(list) => ticket.cc = list.clone(),
        crate::Change::TimeSpent(_) => {}
    }
    let update = Event {
        seq: bump(tx, "counter/event")?,
        kind: EventKind::Update,
        text: String::new(),
        message_id: None,
        attachments: Vec::new(),
        change: Some(change.clone()),
        held: false,
        suspected_spoofing: false,
        quiet: false,
        ..base.clone()
    };
    append_event(tx, &update)?;
    Ok(update)
}

/// A ticket with a fresh number, open, as someone's new request.
pub(crate) fn new_ticket(
    tx: &TransactionalTree,
    org: &str,
    ticket_type: TicketType,
    summary: &str,
    requester: &str,
    at: OffsetDateTime,
) -> Result<Ticket, sled::transaction::UnabortableTransactionError> {
    Ok(Ticket {
        number: bump(tx, "counter/ticket")?,
        org: org.to_string(),
        ticket_type,
        status: Status::Open,
        summary: summary.to_string(),
        requester: requester.to_string(),
        assignee: None,
        cc: Vec::new(),
        participants: Vec::new(),
        automatic: false,
        priority: Default::default(),
        due: None,
        category: None,
        followers: Vec::new(),
        created_by: None,
        closed_at: None,
        created_at: at,
        updated_at: at,
    })
}

/// A ticket opened on the web or the API (by its requester in the portal, or by staff on
/// someone's behalf), not by mail.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub org: String,
    /// The end user's address, or a placeholder for a guest.
    pub requester: String,
    pub ticket_type: TicketType,
    pub summary: String,
    pub text: String,
    pub category: Option<String>,
    pub priority: Priority,
    pub assignee: Option<String>,
    pub attachments: Vec<AttachmentRef>,
    /// The staff member opening it for the requester (the first message is theirs); `None`
    /// when the requester opens it.
    pub staff_author: Option<String>,
    /// No mail to the requester about the first message (see [`Event::quiet`]).
    pub quiet: bool,
    pub at: OffsetDateTime,
}

/// What someone does to a ticket from the web UI or the API: a public reply or an
/// internal note, and field changes, applied together.
#[derive(Debug, Clone)]
pub struct TicketAction {
    pub ticket: u64,
    /// Who acts: a staff member, or the end user in the portal.
    pub author: String,
    /// Staff may write notes and change fields; an end user only replies.
    pub by_staff: bool,
    /// A reply (`Public`) or a note (`Internal`); `None` for field changes alone.
    pub text: Option<(Visibility, String)>,
    /// Files that go with the text.
    pub attachments: Vec<AttachmentRef>,
    pub changes: Vec<crate::Change>,
    pub at: OffsetDateTime,
}

impl Store {
    /// Opens a ticket from the web with its first message; returns it and that event.
    pub fn open_ticket(&self, n: &NewTicket) -> Result<(Ticket, Event), StoreError> {
        let done = self
            .state
            .transaction(|tx| {
                let ticket = Ticket {
                    category: n.category.clone(),
                    priority: n.priority,
                    assignee: n.assignee.clone(),
                    created_by: n.staff_author.clone(),
                    ..new_ticket(tx, &n.org, n.ticket_type, &n.summary, &n.requester, n.at)?
                };
                let author = n.staff_author.as_deref().unwrap_or(&n.requester);
                let event = Event {
                    kind: EventKind::Created,
                    visibility: Visibility::Public,
                    text: n.text.clone(),
                    attachments: n.attachments.clone(),
                    quiet: n.quiet,
                    seq: bump(tx, "counter/event")?,
                    ..Event::by(ticket.number, author, n.staff_author.is_some(), n.at)
                };
                append_event(tx, &event)?;
                save_ticket(tx, None, &ticket)?;
                Ok((ticket, event))
            })
            .map_err(StoreError::from)?;
        self.flush()?;
        Ok(done)
    }

    /// Adds or removes `email` among the ticket's followers (no event: it is personal).
    pub fn set_following(&self, ticket: u64, email: &str, follow: bool) -> Result<(), StoreError> {
        let key = num_key("ticket/", ticket);
        self.state
            .transaction(|tx| {
                let raw = tx
                    .get(&key)?
                    .ok_or_else(|| Abort(StoreError::NotFound(format!("ticket {ticket}"))))?;
                let before: Ticket = decode(&raw).map_err(Abort)?;
                let mut t = before.clone();
                t.followers.retain(|f| f != email);
                if follow {
                    t.followers.push(email.to_string());
                }
                save_ticket(tx, Some(&before), &t)?;
                Ok(())
            })
            .map_err(StoreError::from)?;
        self.flush()
    }

    /// Applies an action in one transaction and returns the events it appended.
    pub fn act_on_ticket(&self, a: &TicketAction) -> Result<Vec<Event>, StoreError> {
        if a.text.is_none() && a.changes.is_empty() {
            return Err(StoreError::Invalid("nothing to do".into()));
        }
        if a.text.is_none() && !a.attachments.is_empty() {
            return Err(StoreError::Invalid("files go with a text".into()));
        }
        if !a.by_staff
            && (!a.changes.is_empty() || matches!(a.text, Some((Visibility::Internal, _))))
        {
            return Err(StoreError::Invalid(
                "only staff write notes or change fields".into(),
            ));
        }
        self.state
            .transaction(|tx| {
                let raw = tx
                    .get(num_key("ticket/", a.ticket))?
                    .ok_or_else(|| Abort(StoreError::NotFound(format!("ticket {}", a.ticket))))?;
                let mut ticket: Ticket = decode(&raw).map_err(Abort)?;
                let before = ticket.clone();
                let mut appended = Vec::new();
                let base = Event::by(a.ticket, &a.author, a.by_staff, a.at);
                if let Some((visibility, text)) = &a.text {
                    let event = Event {
                        seq: bump(tx, "counter/event")?,
                        kind: match visibility {
                            Visibility::Public => EventKind::Reply,
                            Visibility::Internal => EventKind::Note,
                        },
                        visibility: *visibility,
                        text: text.clone(),
                        attachments: a.attachments.clone(),
                        ..base.clone()
                    };
                    append_event(tx, &event)?;
                    appended.push(event);
                }
                for change in &a.changes {
                    appended.push(append_change(tx, &mut ticket, change, &base)?);
                }
                // An end user writing back reopens a ticket that was waiting or done, as
                // a reply by mail does.
                if !a.by_staff && a.text.is_some() && ticket.status != Status::Open {
                    ticket.status = Status::Open;
                }
                ticket.updated_at = a.at;
                save_ticket(tx, Some(&before), &ticket)?;
                Ok(appended)
            })
            .map_err(StoreError::from)
            .and_then(|appended| {
                self.flush()?;
                Ok(appended)
            })
    }

    /// Applies one delivery: dedup by Message-ID within the org, the ticket (new or
    /// updated), its event, the Message-ID index, the decision, and (for the last delivery)
    /// removal of the spool marker — all or nothing. Idempotent: a delivery already decided
    /// returns the earlier decision unchanged.
    pub fn commit_delivery(&self, c: &DeliveryCommit) -> Result<Decision, StoreError> {
        self.state
            .transaction(|tx| apply_delivery(tx, c))
            .map_err(StoreError::from)
    }

    /// Applies what the pipeline decided about several messages, in order, in ONE
    /// transaction: sled writes every transaction's batch to the log with a sync of its
    /// own, so committing messages together is what lets the pipeline keep up with the
    /// receiver (group commit, as the spool does). All or nothing; on an error nothing
    /// is applied and the caller may retry message by message. Returns the decisions.
    pub fn commit_pipeline(&self, writes: &[PipelineWrite]) -> Result<Vec<Decision>, StoreError> {
        self.state
            .transaction(|tx| {
                let mut decided = Vec::with_capacity(writes.len());
                for w in writes {
                    match w {
                        PipelineWrite::Delivery(c) => decided.push(apply_delivery(tx, c)?),
                        PipelineWrite::Decision {
                            decision,
                            last_delivery,
                        } => {
                            apply_decision(tx, decision, *last_delivery)?;
                            decided.push(decision.clone());
                        }
                    }
                }
                Ok(decided)
            })
            .map_err(StoreError::from)
    }

    /// What was decided about one delivery of an inbound message.
    pub fn decision(&self, inbound: u64, org: &str) -> Result<Option<Decision>, StoreError> {
        self.state
            .get(decision_key(inbound, org))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The decision log, newest first.
    pub fn decisions(&self, limit: usize) -> Result<Vec<Decision>, StoreError> {
        self.state
            .scan_prefix("decision/")
            .values()
            .rev()
            .take(limit)
            .map(|v| decode(&v?))
            .collect()
    }

    pub fn ticket(&self, number: u64) -> Result<Option<Ticket>, StoreError> {
        self.state
            .get(num_key("ticket/", number))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Tickets matching `filter`, most recently updated first.
    pub fn tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>, StoreError> {
        self.tickets_where(filter, usize::MAX, |_| true)
    }

    /// At most `limit` tickets matching `filter` and `visible`, most recently updated
    /// first, read through the recency index.
    pub fn tickets_where(
        &self,
        filter: &TicketFilter,
        limit: usize,
        visible: impl Fn(&Ticket) -> bool,
    ) -> Result<Vec<Ticket>, StoreError> {
        let mut out = Vec::new();
        for k in self.state.scan_prefix("tupd/").keys().rev() {
            if out.len() >= limit {
                break;
            }
            let n = key_num(&k?).ok_or_else(|| StoreError::Corrupt("tupd key".into()))?;
            let Some(t) = self.ticket(n)? else {
                continue;
            };
            if filter.org.as_ref().is_some_and(|o| *o != t.org)
                || filter.status.is_some_and(|s| s != t.status)
                || filter.ticket_type.is_some_and(|ty| ty != t.ticket_type)
                || !visible(&t)
            {
                continue;
            }
            out.push(t);
        }
        Ok(out)
    }

    /// Builds the recency index, the person index and the ticket counts for stores written
    /// before they existed.
    pub(crate) fn ensure_recency_index(&self) -> Result<(), StoreError> {
        if self.state.get("meta/recency-index")?.is_none() {
            for v in self.state.scan_prefix("ticket/").values() {
                let t: Ticket = decode(&v?)?;
                self.state.insert(recency_key(&t), &[])?;
            }
            self.state.insert("meta/recency-index", &[1u8])?;
        }
        if self.state.get("meta/person-index")?.is_none() {
            for v in self.state.scan_prefix("ticket/").values() {
                for k in person_keys(&decode(&v?)?) {
                    self.state.insert(k, &[])?;
                }
            }
            self.state.insert("meta/person-index", &[1u8])?;
        }
        if self.state.get("meta/ticket-counts")?.is_none() {
            let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
            for v in self.state.scan_prefix("ticket/").values() {
                let t: Ticket = decode(&v?)?;
                *counts.entry(count_key(&t)).or_default() += 1;
                *counts
                    .entry(daily_key(&t.org, t.created_at.date(), "opened"))
                    .or_default() += 1;
            }
            for (k, n) in counts {
                self.state.insert(k, &n.to_be_bytes())?;
            }
            self.state.insert("meta/ticket-counts", &[1u8])?;
        }
        if self.state.get("meta/content-uses")?.is_none() {
            for v in self.state.scan_prefix("ev/").values() {
                let e: Event = decode(&v?)?;
                for a in &e.attachments {
                    self.state.insert(blobuse_key(&a.sha256, e.ticket), &[])?;
                }
                if let Some(inbound) = e.inbound {
                    self.state.insert(inbounduse_key(inbound, e.ticket), &[])?;
                }
            }
            for v in self.state.scan_prefix("decision/").values() {
                let d: Decision = decode(&v?)?;
                if let Outcome::Duplicate { ticket } = d.outcome {
                    self.state.insert(duplicate_key(ticket, d.inbound), &[])?;
                }
            }
            self.state.insert("meta/content-uses", &[1u8])?;
        }
        self.flush()
    }

    /// Tickets raised by (`assigned == false`) or assigned to `email`, most recently
    /// updated first, at most `limit`; read through the person index.
    pub fn tickets_of(
        &self,
        email: &str,
        assigned: bool,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let prefix = format!(
            "{}/{email}\0",
            if assigned {
                "byassignee"
            } else {
                "byrequester"
            }
        );
        let mut out = Vec::new();
        for k in self.state.scan_prefix(prefix.as_bytes()).keys() {
            let n = key_num(&k?).ok_or_else(|| StoreError::Corrupt("person index key".into()))?;
            if let Some(t) = self.ticket(n)? {
                out.push(t);
            }
        }
        out.sort_by_key(|t| std::cmp::Reverse(t.updated_at));
        out.truncate(limit);
        Ok(out)
    }

    /// How many tickets each organization has of each type and status (kept with every
    /// ticket write, so nothing is scanned).
    pub fn ticket_counts(&self) -> Result<Vec<(String, TicketType, Status, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.state.scan_prefix("tcount/") {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k["tcount/".len()..]).into_owned();
            let mut parts = key.rsplitn(3, '/');
            let (Some(status), Some(ty), Some(org)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(StoreError::Corrupt("ticket count key".into()));
            };
            let (Ok(status), Ok(ty)) = (status.parse::<Status>(), ty.parse::<TicketType>()) else {
                return Err(StoreError::Corrupt("ticket count key".into()));
            };
            out.push((org.to_string(), ty, status, read_counter(Some(v))));
        }
        Ok(out)
    }

    /// A ticket's events in log order.
    pub fn events_for(&self, ticket: u64) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for k in self.state.scan_prefix(num_key("tev/", ticket)).keys() {
            let seq = key_num(&k?).ok_or_else(|| StoreError::Corrupt("tev key".into()))?;
            if let Some(v) = self.state.get(num_key("ev/", seq))? {
                out.push(decode(&v)?);
            }
        }
        Ok(out)
    }

    /// Calls `f` with every ticket, one at a time (for counts over all tickets without
    /// holding them all).
    pub fn visit_tickets(&self, mut f: impl FnMut(&Ticket)) -> Result<(), StoreError> {
        for v in self.state.scan_prefix("ticket/").values() {
            f(&decode::<Ticket>(&v?)?);
        }
        Ok(())
    }

    /// Tickets opened and closed per organization and day, from `since` on:
    /// (organization, day, opened, closed).
    pub fn daily_counts(
        &self,
        since: time::Date,
    ) -> Result<Vec<(String, time::Date, u64, u64)>, StoreError> {
        let mut by_day: std::collections::BTreeMap<(String, time::Date), (u64, u64)> =
            Default::default();
        for item in self.state.scan_prefix("daily/") {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k["daily/".len()..]).into_owned();
            let mut parts = key.rsplitn(3, '/');
            let (Some(what), Some(day), Some(org)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(StoreError::Corrupt("daily count key".into()));
            };
            let day =
                parse_day(day).ok_or_else(|| StoreError::Corrupt("daily count key".into()))?;
            if day < since {
                continue;
            }
            let entry = by_day.entry((org.to_string(), day)).or_default();
            match what {
                "opened" => entry.0 += read_counter(Some(v)),
                _ => entry.1 += read_counter(Some(v)),
            }
        }
        Ok(by_day
            .into_iter()
            .map(|((org, day), (opened, closed))| (org, day, opened, closed))
            .collect())
    }

    /// Events after `seq` in log order, at most `limit`: what a consumer reads from its cursor.
    pub fn events_since(&self, seq: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.state
            .range(num_key("ev/", seq.saturating_add(1))..num_key("ev/", u64::MAX))
            .values()
            .take(limit)
            .map(|v| decode(&v?))
            .collect()
    }

    /// The ticket a Message-ID (seen or generated) belongs to within an organization.
    pub fn ticket_for_message_id(&self, org: &str, mid: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .state
            .get(mid_key(org, &normalize_message_id(mid)))?
            .and_then(|v| mid_ticket(&v)))
    }

    /// The ticket a reply from `sender` naming this Message-ID belongs to, and whether
    /// that is in doubt. A sender's own id leads to their own mail's ticket. Anyone else's
    /// reply goes to the first sender's ticket, in doubt when several senders used the id
    /// (someone who saw it early may have sent first): such a reply proves no part in it.
    pub fn ticket_for_reference(
        &self,
        org: &str,
        mid: &str,
        sender: &str,
    ) -> Result<Option<(u64, bool)>, StoreError> {
        let mid = normalize_message_id(mid);
        let Some(entry) = self.state.get(mid_key(org, &mid))? else {
            return Ok(None);
        };
        let Some(ticket) = mid_ticket(&entry) else {
            return Ok(None);
        };
        if mid_origin(&entry).is_some_and(|(_, owner)| owner == sender) {
            return Ok(Some((ticket, false)));
        }
        if let Some(own) = self
            .state
            .get(midby_key(org, &mid, sender))?
            .and_then(|v| mid_ticket(&v))
        {
            return Ok(Some((own, false)));
        }
        let contested = self
            .state
            .scan_prefix(midby_prefix(org, &mid))
            .next()
            .transpose()?
            .is_some();
        Ok(Some((ticket, contested)))
    }

    /// The inbound message that first brought a Message-ID into an organization.
    pub fn inbound_for_message_id(&self, org: &str, mid: &str) -> Result<Option<u64>, StoreError> {
        let mid = normalize_message_id(mid);
        if let Some((inbound, _)) = self
            .state
            .get(mid_key(org, &mid))?
            .as_deref()
            .and_then(mid_origin)
        {
            return Ok(Some(inbound));
        }
        // Stores before `mid_entry` kept it under a key of its own.
        Ok(self
            .state
            .get(format!("rawmid/{mid}"))?
            .and_then(|v| read_u64(&v)))
    }

    /// Whether a Message-ID is one Postdesk gave a mail it sent in this organization.
    pub fn is_our_message_id(&self, org: &str, mid: &str) -> Result<bool, StoreError> {
        Ok(self
            .state
            .contains_key(ourmid_key(org, &normalize_message_id(mid)))?)
    }

    /// Remembers a Message-ID we generated for a ticket, so replies to it thread.
    pub fn register_message_id(&self, org: &str, mid: &str, ticket: u64) -> Result<(), StoreError> {
        self.state.insert(
            mid_key(org, &normalize_message_id(mid)),
            &ticket.to_be_bytes(),
        )?;
        Ok(())
    }

    /// A consumer's position in the event log.
    pub fn cursor(&self, consumer: &str) -> Result<u64, StoreError> {
        Ok(read_counter(self.state.get(format!("cursor/{consumer}"))?))
    }

    pub fn set_cursor(&self, consumer: &str, seq: u64) -> Result<(), StoreError> {
        self.state
            .insert(format!("cursor/{consumer}"), &seq.to_be_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::scratch_store as store;
    use crate::{EventKind, TicketType, Visibility};

    fn delivery(inbound: u64, from: &str) -> DeliveryCommit {
        DeliveryCommit {
            inbound,
            org: "acme".into(),
            message_id: Some("<m1@x>".into()),
            from: from.into(),
            subject: "s".into(),
            target: TicketTarget::New {
                ticket_type: TicketType::Question,
                summary: "s".into(),
                requester: from.into(),
                automatic: false,
            },
            kind: EventKind::Created,
            by_staff: false,
            text: "t".into(),
            attachments: vec![],
            automatic: false,
            participants: vec![from.into()],
            cc: vec![],
            rule: "new".into(),
            notes: vec![],
            visibility: Visibility::Public,
            changes: vec![],
            last_delivery: true,
            held: false,
            suspected_spoofing: false,
            at: OffsetDateTime::now_utc(),
        }
    }

    fn outcome(s: &Store, inbound: u64, from: &str) -> Outcome {
        s.commit_delivery(&delivery(inbound, from))
            .expect("commit")
            .outcome
    }

    #[test]
    fn a_message_id_entry_keeps_its_ticket_first_original_and_owner() {
        let (s, _dir) = store("entry");
        assert!(matches!(
            outcome(&s, 1, "bob@c.test"),
            Outcome::Accepted { ticket: 1, .. }
        ));
        // The owner's retry is a duplicate; another sender's mail is its own, and its
        // retry a duplicate of that.
        assert_eq!(
            outcome(&s, 2, "bob@c.test"),
            Outcome::Duplicate { ticket: 1 }
        );
        assert!(matches!(
            outcome(&s, 3, "eve@d.test"),
            Outcome::Accepted { ticket: 2, .. }
        ));
        assert_eq!(
            outcome(&s, 4, "eve@d.test"),
            Outcome::Duplicate { ticket: 2 }
        );
        assert_eq!(s.ticket_for_message_id("acme", "m1@x").expect("t"), Some(1));
        // A reply naming it: each sender's own id leads to their own ticket; anyone
        // else's goes to the first sender's, in doubt.
        let reference = |from: &str| s.ticket_for_reference("acme", "<m1@x>", from).expect("r");
        assert_eq!(reference("bob@c.test"), Some((1, false)));
        assert_eq!(reference("eve@d.test"), Some((2, false)));
        assert_eq!(reference("carol@c.test"), Some((1, true)));
        assert_eq!(
            s.ticket_for_reference("acme", "other@x", "carol@c.test")
                .expect("r"),
            None
        );
        assert_eq!(
            s.inbound_for_message_id("acme", "<m1@x>").expect("i"),
            Some(1)
        );
        assert_eq!(s.inbound_for_message_id("beta", "m1@x").expect("i"), None);
        // Moving the entry to another ticket keeps who sent it first.
        let entry = s
            .state
            .get(mid_key("acme", "m1@x"))
            .expect("get")
            .expect("entry");
        let moved = moved_mid_entry(&entry, 7);
        assert_eq!(mid_ticket(&moved), Some(7));
        assert_eq!(mid_origin(&moved), Some((1, "bob@c.test")));
        assert_eq!(mid_ticket(&moved_mid_entry(&[], 7)), Some(7));
    }

    #[test]
    fn a_suspected_forgery_sent_first_does_not_make_the_real_mail_a_duplicate() {
        let (s, _dir) = store("forged");
        let forged = DeliveryCommit {
            suspected_spoofing: true,
            ..delivery(1, "bob@c.test")
        };
        assert!(matches!(
            s.commit_delivery(&forged).expect("forged").outcome,
            Outcome::Accepted { ticket: 1, .. }
        ));
        assert!(matches!(
            outcome(&s, 2, "bob@c.test"),
            Outcome::Accepted { ticket: 2, .. }
        ));
        assert_eq!(
            outcome(&s, 3, "bob@c.test"),
            Outcome::Duplicate { ticket: 2 }
        );
        assert_eq!(s.ticket_for_message_id("acme", "m1@x").expect("t"), Some(2));
        assert_eq!(
            s.ticket_for_reference("acme", "m1@x", "carol@c.test")
                .expect("r"),
            Some((2, false)),
            "one sender used it: no doubt"
        );
    }

    #[test]
    fn entries_written_before_they_held_the_owner_are_still_read() {
        let (s, _dir) = store("legacy");
        // As stores before `mid_entry` wrote them: the ticket alone, the owner and the first
        // original under keys of their own; and an outbound id of ours (the ticket alone).
        s.state
            .insert(mid_key("acme", "m1@x"), &5u64.to_be_bytes())
            .expect("w");
        s.state
            .insert(midfrom_key("acme", "m1@x"), b"bob@c.test")
            .expect("w");
        s.state
            .insert("rawmid/m1@x", &9u64.to_be_bytes())
            .expect("w");
        s.state
            .insert(mid_key("acme", "m2@x"), &6u64.to_be_bytes())
            .expect("w");
        assert_eq!(
            outcome(&s, 10, "bob@c.test"),
            Outcome::Duplicate { ticket: 5 }
        );
        assert!(matches!(
            outcome(&s, 11, "eve@d.test"),
            Outcome::Accepted { .. }
        ));
        assert_eq!(
            s.inbound_for_message_id("acme", "m1@x").expect("i"),
            Some(9)
        );
        let ours = DeliveryCommit {
            message_id: Some("m2@x".into()),
            ..delivery(12, "eve@d.test")
        };
        assert_eq!(
            s.commit_delivery(&ours).expect("c").outcome,
            Outcome::Duplicate { ticket: 6 }
        );
    }
}
