//! The data model: organizations, staff, tickets, events, inbound envelopes and decisions.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Org {
    pub slug: String,
    pub name: String,
    /// Every address mail is accepted for, lowercase; the first is `slug@domain`.
    pub addresses: Vec<String>,
    /// Sender domains allowed to open tickets; empty means everyone.
    pub whitelist: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// How the organization's web portal looks and how its users sign in.
    #[serde(default)]
    pub portal: PortalSettings,
    /// How long its data is kept (off unless set).
    #[serde(default)]
    pub retention: Retention,
    /// When its owner deactivated it: it takes no more mail and its portal is closed; its
    /// data is deleted [`Org::DELETION_GRACE_DAYS`] later unless it is reactivated.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deactivated_at: Option<OffsetDateTime>,
}

/// How long an organization keeps what it holds; `None` keeps it for good.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Retention {
    /// Original messages (the raw mail) are dropped this many days after they came; the
    /// text on the tickets stays.
    pub originals_days: Option<u32>,
    /// Closed tickets are deleted this many months (of 30 days) after they were closed.
    pub closed_months: Option<u32>,
}

impl Retention {
    /// The longest either may be: ten years.
    pub const MAX_DAYS: u32 = 3650;
    pub const MAX_MONTHS: u32 = 120;

    pub fn check(&self) -> Result<(), String> {
        if self
            .originals_days
            .is_some_and(|d| !(1..=Self::MAX_DAYS).contains(&d))
        {
            return Err(format!("Originals are kept 1 to {} days.", Self::MAX_DAYS));
        }
        if self
            .closed_months
            .is_some_and(|m| !(1..=Self::MAX_MONTHS).contains(&m))
        {
            return Err(format!(
                "Closed tickets are kept 1 to {} months.",
                Self::MAX_MONTHS
            ));
        }
        Ok(())
    }
}

/// How end users sign in to an organization's portal.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PortalMode {
    /// An emailed sign-in link.
    #[default]
    EmailLink,
    /// No sign-in: email, summary and description; no attachments, no confirmation mail.
    Guest,
    /// An HS256 JWT from the organization's own sign-in service (issuer = slug).
    DirectoryToken,
}

/// Whether the portal form asks for a category.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FieldMode {
    #[default]
    Hidden,
    Optional,
    Required,
}

/// The portal's texts and form; empty texts fall back to defaults naming the organization.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PortalSettings {
    pub mode: PortalMode,
    pub page_title: String,
    pub form_title: String,
    pub form_message: String,
    pub success_title: String,
    /// The address shown to portal users for writing by mail.
    pub displayed_email: String,
    pub categories: Vec<String>,
    pub category_field: FieldMode,
    /// What the organization does with the data its forms collect, shown with them.
    pub privacy_notice: String,
}

impl Org {
    /// How long a deactivated organization's data is kept: three months.
    pub const DELETION_GRACE_DAYS: i64 = 90;

    /// A new active organization with default portal settings and no retention.
    pub fn new(slug: &str, name: &str, addresses: Vec<String>, created_at: OffsetDateTime) -> Org {
        Org {
            slug: slug.to_string(),
            name: name.to_string(),
            addresses,
            whitelist: Vec::new(),
            created_at,
            portal: PortalSettings::default(),
            retention: Retention::default(),
            deactivated_at: None,
        }
    }

    /// When a deactivated organization's data goes, if it is deactivated.
    pub fn deleted_on(&self) -> Option<OffsetDateTime> {
        self.deactivated_at
            .map(|at| at + time::Duration::days(Self::DELETION_GRACE_DAYS))
    }

    /// The domain of the organization's first address: its mail is signed (DKIM) for it.
    pub fn mail_domain(&self) -> &str {
        self.addresses
            .first()
            .and_then(|a| a.rsplit_once('@'))
            .map_or("", |(_, d)| d)
    }

    /// Whether the sender whitelist lets `address` write as an end user (an empty list
    /// lets all; no address passes only then).
    pub fn allows_sender(&self, address: Option<&str>) -> bool {
        self.allows_sender_domain(address.and_then(|a| a.rsplit_once('@')).map(|(_, d)| d))
    }

    /// Whether the sender whitelist lets mail from `domain` in (an empty list lets all).
    /// A listed domain also allows its subdomains.
    fn allows_sender_domain(&self, domain: Option<&str>) -> bool {
        self.whitelist.is_empty()
            || domain.is_some_and(|d| {
                let d = d.to_ascii_lowercase();
                self.whitelist.iter().any(|w| {
                    let w = w.trim().trim_start_matches('@').to_ascii_lowercase();
                    d == w || d.ends_with(&format!(".{w}"))
                })
            })
    }
}

/// The organization address rule: starts with a letter, lowercase letters, digits and
/// dashes, 4 to 40 characters.
pub fn check_slug(slug: &str) -> Result<(), String> {
    let ok = (4..=40).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid organization name {slug:?}: it must start with a letter and use only \
             lowercase letters, digits and dashes, 4 to 40 characters (e.g. \"acme-support\")"
        ))
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Manager,
    Tech,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "manager" => Ok(Role::Manager),
            "tech" => Ok(Role::Tech),
            _ => Err(format!(
                "unknown role {s:?}: use owner, admin, manager or tech"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Tech => "tech",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Staff {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Receives alerts (new tickets, replies, notes) by mail.
    #[serde(default = "yes")]
    pub alerts: bool,
    /// What an hour of this person's time costs, in cents (for ticket costs).
    #[serde(default)]
    pub hourly_rate_cents: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

fn yes() -> bool {
    true
}

impl Staff {
    /// A new staff member: alerts on, no hourly rate.
    pub fn new(email: &str, name: &str, role: Role, at: OffsetDateTime) -> Staff {
        Staff {
            email: email.to_string(),
            name: name.to_string(),
            role,
            alerts: true,
            hourly_rate_cents: 0,
            created_at: at,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TicketType {
    Question,
    Incident,
    Bug,
}

impl TicketType {
    pub const ALL: [TicketType; 3] = [TicketType::Question, TicketType::Incident, TicketType::Bug];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketType::Question => "question",
            TicketType::Incident => "incident",
            TicketType::Bug => "bug",
        }
    }
}

impl std::str::FromStr for TicketType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "question" => Ok(TicketType::Question),
            "incident" => Ok(TicketType::Incident),
            "bug" => Ok(TicketType::Bug),
            _ => Err(format!("unknown type {s:?}: use question, incident or bug")),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Waiting,
    Resolved,
    Closed,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Waiting,
        Status::Resolved,
        Status::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Waiting => "waiting",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Status::Open),
            "waiting" => Ok(Status::Waiting),
            "resolved" => Ok(Status::Resolved),
            "closed" => Ok(Status::Closed),
            _ => Err(format!(
                "unknown status {s:?}: use open, waiting, resolved or closed"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ticket {
    pub number: u64,
    pub org: String,
    #[serde(rename = "type")]
    pub ticket_type: TicketType,
    pub status: Status,
    pub summary: String,
    pub requester: String,
    pub assignee: Option<String>,
    pub cc: Vec<String>,
    /// Everyone who wrote to or was written to on this ticket (lowercase addresses).
    pub participants: Vec<String>,
    /// The opening mail was automatic (auto-reply, bulk, list): never answer it automatically.
    pub automatic: bool,
    #[serde(default)]
    pub priority: Priority,
    /// Due date, `YYYY-MM-DD`.
    #[serde(default)]
    pub due: Option<String>,
    /// One of the organization's categories, if the portal asked for one.
    #[serde(default)]
    pub category: Option<String>,
    /// Staff members who asked to hear of everything on this ticket.
    #[serde(default)]
    pub followers: Vec<String>,
    /// The staff member who opened it on someone's behalf (they keep seeing it after the
    /// contact changes); `None` for tickets opened by their requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When it was last resolved or closed; `None` while open or waiting.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    /// When it was opened or last reopened (became neither resolved nor closed).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub active_since: Option<OffsetDateTime>,
    /// When its status last changed (or it was opened).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub status_since: Option<OffsetDateTime>,
    /// Since when it has had no assignee; `None` while someone holds it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub unassigned_since: Option<OffsetDateTime>,
    /// The last entry a staff member wrote or change they made.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_staff_at: Option<OffsetDateTime>,
    /// The last message its requester or a CC wrote (automatic and held mail do not count).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_user_at: Option<OffsetDateTime>,
    /// The first public answer by staff.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub first_response_at: Option<OffsetDateTime>,
    /// Minutes of work logged on it, per staff member.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub minutes_logged: std::collections::BTreeMap<String, u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Opened from a file of old mail (`postdesk import`) and not written since by anyone
    /// here: history, which monitors leave alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

impl Ticket {
    /// A new open ticket: nobody assigned or copied, no due date, nothing logged yet.
    pub fn fresh(
        number: u64,
        org: &str,
        ticket_type: TicketType,
        summary: &str,
        requester: &str,
        at: OffsetDateTime,
    ) -> Ticket {
        Ticket {
            number,
            org: org.to_string(),
            ticket_type,
            status: Status::Open,
            summary: summary.to_string(),
            requester: requester.to_string(),
            assignee: None,
            cc: Vec::new(),
            participants: Vec::new(),
            automatic: false,
            priority: Priority::default(),
            due: None,
            category: None,
            followers: Vec::new(),
            created_by: None,
            closed_at: None,
            active_since: None,
            status_since: None,
            unassigned_since: None,
            last_staff_at: None,
            last_user_at: None,
            first_response_at: None,
            minutes_logged: Default::default(),
            created_at: at,
            updated_at: at,
            imported: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "urgent" => Ok(Priority::Urgent),
            _ => Err(format!(
                "unknown priority {s:?}: use low, normal, high or urgent"
            )),
        }
    }
}

/// A change to a ticket's fields, applied as its own event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "field", content = "value", rename_all = "snake_case")]
pub enum Change {
    Status(Status),
    Assignee(Option<String>),
    Priority(Priority),
    Due(Option<String>),
    /// The requester (contact), e.g. the real person behind a guest's ticket.
    Contact(String),
    Type(TicketType),
    Category(Option<String>),
    /// The whole CC list.
    Cc(Vec<String>),
    /// Minutes the event's author worked on the ticket (changes no field; costs add up).
    TimeSpent(u32),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Reply,
    Note,
    /// A delivery status report about a message of this ticket.
    DeliveryReport,
    /// A field changed (status, assignee, priority, due date); see `Event::change`.
    Update,
    /// Staff mail commands that were not understood; nothing else changed. Internal.
    CommandsRejected,
    /// The ticket was deleted (by `author`); the only entry of it left in the log.
    Deleted,
    /// A monitor found the ticket in the state it watches for (see `Event::monitor`).
    /// Internal; it changes nothing and is no one's activity.
    Alert,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Public,
    Internal,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttachmentRef {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Position in the global event log.
    pub seq: u64,
    pub ticket: u64,
    pub kind: EventKind,
    pub author: String,
    /// The author was proven to be staff (reply token or DMARC), not merely named so.
    pub by_staff: bool,
    pub visibility: Visibility,
    pub text: String,
    pub message_id: Option<String>,
    pub attachments: Vec<AttachmentRef>,
    /// The inbound message this event came from, if any.
    pub inbound: Option<u64>,
    /// Automatic mail (auto-reply, bulk, list, bounce): no automatic answer may follow.
    pub automatic: bool,
    /// For `Update` events: what changed.
    #[serde(default)]
    pub change: Option<Change>,
    /// Mail from someone who takes no part in the ticket (not its requester or a CC, not
    /// staff who may see it, not the holder of a reply token): kept internal, changing
    /// nothing and mailed to no one outside, until staff accept the sender as a CC or open
    /// it as a ticket of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// The sender's domain publishes a DMARC policy of reject or quarantine and this mail
    /// fails it: the From may be forged, so no automatic answer goes to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspected_spoofing: bool,
    /// Staff asked that no one outside be mailed about this entry (a ticket opened for the
    /// record, say); staff alerts still go.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
    /// For `Alert` events: the monitor that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<crate::Monitor>,
    /// Read from a file of old mail (`postdesk import`): history, which mails no one and
    /// rings no bell.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Event {
    /// An internal entry by `author` with nothing in it yet: the base of the entries an
    /// action appends (its `seq` and `kind` are set when it is appended).
    pub fn by(ticket: u64, author: &str, by_staff: bool, at: OffsetDateTime) -> Event {
        Event {
            seq: 0,
            ticket,
            kind: EventKind::Note,
            author: author.to_string(),
            by_staff,
            visibility: Visibility::Internal,
            text: String::new(),
            message_id: None,
            attachments: Vec::new(),
            inbound: None,
            automatic: false,
            change: None,
            held: false,
            suspected_spoofing: false,
            quiet: false,
            monitor: None,
            imported: false,
            at,
        }
    }
}

/// The text of a portal guest's request: the address they gave (unverified, so not the
/// contact) on top of what they wrote. Erasure and a person's export find it by it.
pub fn guest_request_text(address: &str, text: &str) -> String {
    format!("{address} wrote:\n\n{text}")
}

/// The address a portal guest's request was made in the name of, if `text` is one.
pub fn guest_request_by(text: &str) -> Option<String> {
    let (first, _) = text.split_once(" wrote:\n\n")?;
    (first.contains('@') && !first.contains(char::is_whitespace))
        .then(|| first.to_ascii_lowercase())
}

/// What staff did with a held mail (see [`Event::held`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum HeldOutcome {
    /// The sender became a CC of the ticket.
    Accepted {
        by: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// The mail became the first message of a ticket of its own.
    OpenedAsTicket {
        ticket: u64,
        by: String,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
}

/// How a message reached us.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Smtp,
    Lmtp,
    Imap,
    /// A file of old mail (mbox or Maildir) read by `postdesk import`.
    Import,
}

/// One organization address a stored message is delivered to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivery {
    pub org: String,
    /// The recipient as given in RCPT TO (lowercase), plus part included.
    pub address: String,
}

/// What the receiver knew about a message when it accepted it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub source: Source,
    pub peer: String,
    pub helo: String,
    /// Return path; empty for bounces.
    pub mail_from: String,
    pub deliveries: Vec<Delivery>,
    /// Recipients of the same message that their organization refused (SMTP answers once
    /// per message, so these are recorded rather than answered).
    #[serde(default)]
    pub refused: Vec<RefusedDelivery>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// For mail read from a mailbox: where it was, committed with the message so the
    /// mailbox is never read past an uncommitted message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<MailboxOrigin>,
}

impl Envelope {
    /// The organizations the message was accepted for or refused by, in its order.
    pub fn orgs(&self) -> impl Iterator<Item = &str> {
        self.deliveries
            .iter()
            .map(|d| d.org.as_str())
            .chain(self.refused.iter().map(|r| r.org.as_str()))
    }
}

/// The place of an imported message in its mailbox source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MailboxOrigin {
    /// The source's name (see `MailboxStatus::source`).
    pub source: String,
    pub uidvalidity: u32,
    pub uid: u32,
    /// What the importer still has to do to the message in the mailbox once it is stored.
    pub follow_up: Option<FollowUp>,
}

/// What happens to a message in its mailbox after it is safely stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FollowUp {
    MarkSeen,
    MoveTo(String),
}

/// How far a mailbox source has been read: every message up to `last_uid` of this
/// `uidvalidity` is stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MailboxCursor {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// What an admin sees about a mailbox source (the password is never kept here).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MailboxStatus {
    /// `user@host:port/folder`, unique per configured source.
    pub source: String,
    pub org: String,
    pub connected: bool,
    /// Whether the server pushes new mail (IDLE) or the source polls.
    pub idle: bool,
    pub last_error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
    /// The last time the mailbox was read through without error.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefusedDelivery {
    pub org: String,
    pub address: String,
    pub reason: String,
}

/// The outcome of processing one delivery of an inbound message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Accepted {
        ticket: u64,
        new_ticket: bool,
        /// Which rule placed it: reply_token, in_reply_to, references, subject_tag, new, delivery_report.
        rule: String,
    },
    Duplicate {
        ticket: u64,
    },
    Refused {
        reason: String,
    },
}

impl Outcome {
    /// The outcome's name, as the decision log writes it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Refused { .. } => "refused",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    pub inbound: u64,
    pub org: String,
    pub message_id: Option<String>,
    pub from: String,
    pub subject: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Further facts worth showing (auto-reply marked, staff From without proof, ...).
    pub notes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}
