//! Tickets and the event log: opening and changing tickets from the web, the ticket's
//! indexes (recency, counts, people, days), the event log and its consumers' cursors.

use crate::codec::{decode, encode, key_num, num_key, read_counter};
use crate::deletion::{blobuse_key, duplicate_key, inbounduse_key};
use crate::engine::{ConflictableTransactionError::Abort, TransactionalTree};
use crate::{
    AttachmentRef, Decision, Event, EventKind, Outcome, Priority, Status, Store, StoreError,
    Ticket, TicketType, Visibility,
};
use time::OffsetDateTime;

/// Filters for the ticket list; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub org: Option<String>,
    pub status: Option<Status>,
    pub ticket_type: Option<TicketType>,
}

impl TicketFilter {
    /// Whether `t` is one of the tickets the filter asks for.
    pub fn matches(&self, t: &Ticket) -> bool {
        self.org.as_ref().is_none_or(|o| *o == t.org)
            && self.status.is_none_or(|s| s == t.status)
            && self.ticket_type.is_none_or(|ty| ty == t.ticket_type)
    }
}

/// The recency index: `tupd/<updated_at ns><number>`, so lists read newest first without
/// loading every ticket.
pub(crate) fn recency_key(t: &Ticket) -> Vec<u8> {
    let ns = u64::try_from(t.updated_at.unix_timestamp_nanos()).unwrap_or(0);
    let mut k = num_key("tupd/", ns);
    k.extend_from_slice(&t.number.to_be_bytes());
    k
}

pub(crate) fn bump(
    tx: &TransactionalTree,
    key: &str,
) -> Result<u64, crate::engine::UnabortableTransactionError> {
    let n = read_counter(tx.get(key.as_bytes())?) + 1;
    tx.insert(key.as_bytes(), &n.to_be_bytes())?;
    Ok(n)
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
pub fn parse_day(text: &str) -> Option<time::Date> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month = time::Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
    let day = parts.next()?.parse().ok()?;
    time::Date::from_calendar_date(year, month, day).ok()
}

fn is_done(s: Status) -> bool {
    matches!(s, Status::Resolved | Status::Closed)
}

/// What an entry makes of the ticket's activity, first answer and logged time. Alerts
/// and rejected commands are no one's activity; automatic and held mail is not the
/// requester's.
pub(crate) fn record_activity(ticket: &mut Ticket, e: &Event) {
    if matches!(
        e.kind,
        EventKind::Alert | EventKind::CommandsRejected | EventKind::Deleted
    ) {
        return;
    }
    if e.by_staff {
        ticket.last_staff_at = Some(e.at);
        if e.kind == EventKind::Reply
            && e.visibility == Visibility::Public
            && ticket.first_response_at.is_none()
        {
            ticket.first_response_at = Some(e.at);
        }
        if let Some(crate::Change::TimeSpent(m)) = &e.change {
            *ticket.minutes_logged.entry(e.author.clone()).or_default() += u64::from(*m);
        }
    } else if !e.automatic && !e.held && matches!(e.kind, EventKind::Created | EventKind::Reply) {
        // Old mail read in (an import) never moves the time back.
        ticket.last_user_at = ticket.last_user_at.max(Some(e.at));
    }
}

/// Writes a ticket with its indexes: the recency index, the counts by organization, type
/// and status, the per-day opened/closed counts and the monitor indexes; the times those
/// read (`closed_at`, `active_since`, `status_since`, `unassigned_since`) are kept here.
/// `before` is the ticket as stored until now (`None` for a new one).
pub(crate) fn save_ticket(
    tx: &TransactionalTree,
    before: Option<&Ticket>,
    after: &Ticket,
) -> Result<(), crate::engine::ConflictableTransactionError<StoreError>> {
    let mut after = after.clone();
    let was_done = before.is_some_and(|b| is_done(b.status));
    if before.is_none_or(|b| b.status != after.status) {
        after.status_since = Some(after.updated_at);
    }
    if before.is_none() || (was_done && !is_done(after.status)) {
        after.active_since = Some(after.updated_at);
    }
    if after.assignee.is_some() {
        after.unassigned_since = None;
    } else if before.is_none_or(|b| b.assignee.is_some()) {
        after.unassigned_since = Some(after.updated_at);
    }
    crate::monitors::reindex(tx, before, &after)?;
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

/// A point in time as a key part: nanoseconds since 1970, earlier times as 0 and times
/// past 2554 as the last.
pub(crate) fn time_part(at: OffsetDateTime) -> u64 {
    let ns = at.unix_timestamp_nanos().clamp(0, i128::from(u64::MAX));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The time-entry index: `timelog/<at><seq>` for each `TimeSpent` change, for exports and
/// reports by period.
pub(crate) fn time_entry_key(e: &Event) -> Option<Vec<u8>> {
    matches!(e.change, Some(crate::Change::TimeSpent(_))).then(|| {
        let mut k = num_key("timelog/", time_part(e.at));
        k.extend_from_slice(&e.seq.to_be_bytes());
        k
    })
}

/// Appends `event` to the log and to its ticket's event index.
pub(crate) fn append_event(
    tx: &TransactionalTree,
    event: &Event,
) -> Result<(), crate::engine::ConflictableTransactionError<StoreError>> {
    tx.insert(num_key("ev/", event.seq), encode(event).map_err(Abort)?)?;
    tx.insert(tev_key(event.ticket, event.seq), &[])?;
    if let Some(k) = time_entry_key(event) {
        tx.insert(k, &[])?;
    }
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
) -> Result<Event, crate::engine::ConflictableTransactionError<StoreError>> {
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
        monitor: None,
        ..base.clone()
    };
    append_event(tx, &update)?;
    record_activity(ticket, &update);
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
) -> Result<Ticket, crate::engine::UnabortableTransactionError> {
    Ok(Ticket::fresh(
        bump(tx, "counter/ticket")?,
        org,
        ticket_type,
        summary,
        requester,
        at,
    ))
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

impl NewTicket {
    /// A question its requester opens with `text`: normal priority, nobody assigned, no
    /// category or files (the fields a caller sets otherwise go over this).
    pub fn by_requester(
        org: &str,
        requester: &str,
        summary: &str,
        text: &str,
        at: OffsetDateTime,
    ) -> NewTicket {
        NewTicket {
            org: org.to_string(),
            requester: requester.to_string(),
            ticket_type: TicketType::Question,
            summary: summary.to_string(),
            text: text.to_string(),
            category: None,
            priority: Priority::Normal,
            assignee: None,
            attachments: Vec::new(),
            staff_author: None,
            quiet: false,
            at,
        }
    }
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
                let mut ticket = ticket;
                record_activity(&mut ticket, &event);
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
                    record_activity(&mut ticket, &event);
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
                ticket.imported = false;
                save_ticket(tx, Some(&before), &ticket)?;
                Ok(appended)
            })
            .map_err(StoreError::from)
            .and_then(|appended| {
                self.flush()?;
                Ok(appended)
            })
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
        let mut index = self.state.scan_prefix("tupd/").keys().rev();
        // Tickets are read a group at a time (on PostgreSQL one statement each group):
        // as many as are still wanted, at least 16, at most 256.
        while out.len() < limit {
            let want = (limit - out.len()).clamp(16, 256);
            let mut keys = Vec::with_capacity(want);
            for k in index.by_ref().take(want) {
                let n = key_num(&k?).ok_or_else(|| StoreError::Corrupt("tupd key".into()))?;
                keys.push(crate::engine::Value::from(num_key("ticket/", n)));
            }
            if keys.is_empty() {
                break;
            }
            for v in self.state.get_many(&keys)?.into_iter().flatten() {
                let t: Ticket = decode(&v)?;
                if out.len() < limit && filter.matches(&t) && visible(&t) {
                    out.push(t);
                }
            }
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
        for t in self.all_tickets() {
            f(&t?);
        }
        Ok(())
    }

    /// Every ticket in number order, read one at a time as the caller goes on.
    pub fn all_tickets(&self) -> impl Iterator<Item = Result<Ticket, StoreError>> + '_ {
        self.state
            .scan_prefix("ticket/")
            .values()
            .map(|v| decode::<Ticket>(&v?))
    }

    /// Time entries (`TimeSpent` changes) logged from `from` to `to` (inclusive), oldest
    /// first, read through their index as the caller goes on.
    pub fn time_entries(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> impl Iterator<Item = Result<Event, StoreError>> + '_ {
        let start = num_key("timelog/", time_part(from));
        let mut end = num_key("timelog/", time_part(to));
        end.extend_from_slice(&u64::MAX.to_be_bytes());
        self.state.range(start..=end).keys().filter_map(move |k| {
            let seq = match k {
                Ok(k) => key_num(&k)?,
                Err(e) => return Some(Err(e.into())),
            };
            self.state
                .get(num_key("ev/", seq))
                .map_err(StoreError::from)
                .and_then(|v| v.map(|v| decode::<Event>(&v)).transpose())
                .transpose()
        })
    }

    /// Indexes the time entries of stores written before the index, once.
    pub(crate) fn ensure_time_index(&self) -> Result<(), StoreError> {
        const DONE: &str = "migrated/time-index";
        if self.state.get(DONE)?.is_some() {
            return Ok(());
        }
        let mut batch = crate::engine::Batch::default();
        for v in self.state.scan_prefix("ev/").values() {
            let e: Event = decode(&v?)?;
            if let Some(k) = time_entry_key(&e) {
                batch.insert(k, &[]);
            }
        }
        batch.insert(DONE, &[]);
        self.state.apply_batch(batch)?;
        self.flush()
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
