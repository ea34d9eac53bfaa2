//! What each monitor kind watches: the ticket time its index keeps, the threshold a tick
//! compares that time with, and the episode an alert belongs to. Pure; no I/O.

use crate::{Status, Ticket};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// The seven kinds of monitor an organization can keep.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MonitorKind {
    /// Past its due date and not resolved or closed.
    PastDue,
    /// Due within `hours`.
    DueIn,
    /// No assignee for more than `hours`.
    Unassigned,
    /// Open (not resolved or closed) for more than `hours`.
    Open,
    /// No update by staff or an end user for more than `hours`.
    Inactive,
    /// No update by an end user for more than `hours` (staff updates do not count).
    Stale,
    /// Waiting on the user for more than `hours`.
    Waiting,
}

/// The longest `hours` a monitor takes: a year.
pub const MAX_MONITOR_HOURS: u32 = 24 * 366;

impl MonitorKind {
    pub const ALL: [MonitorKind; 7] = [
        MonitorKind::PastDue,
        MonitorKind::DueIn,
        MonitorKind::Unassigned,
        MonitorKind::Open,
        MonitorKind::Inactive,
        MonitorKind::Stale,
        MonitorKind::Waiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MonitorKind::PastDue => "past_due",
            MonitorKind::DueIn => "due_in",
            MonitorKind::Unassigned => "unassigned",
            MonitorKind::Open => "open",
            MonitorKind::Inactive => "inactive",
            MonitorKind::Stale => "stale",
            MonitorKind::Waiting => "waiting",
        }
    }

    /// Whether the kind is measured in hours (all but `past_due`).
    pub fn takes_hours(self) -> bool {
        self != MonitorKind::PastDue
    }

    /// The ticket time this kind watches.
    pub(crate) fn watch(self) -> Watch {
        match self {
            MonitorKind::PastDue | MonitorKind::DueIn => Watch::Due,
            MonitorKind::Unassigned => Watch::Unassigned,
            MonitorKind::Open => Watch::Opened,
            MonitorKind::Inactive => Watch::Activity,
            MonitorKind::Stale => Watch::UserActivity,
            MonitorKind::Waiting => Watch::Waiting,
        }
    }
}

impl std::str::FromStr for MonitorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MonitorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown monitor kind {s:?}: use past_due, due_in, unassigned, open, \
                     inactive, stale or waiting"
                )
            })
    }
}

/// One monitor of an organization.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    pub kind: MonitorKind,
    /// How long the state must last; `None` for `past_due`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<u32>,
    /// Whether alerts are also mailed (the bell always has them).
    #[serde(default = "yes")]
    pub email: bool,
}

fn yes() -> bool {
    true
}

impl Monitor {
    /// A monitor that mails its alerts.
    pub fn new(kind: MonitorKind, hours: Option<u32>) -> Monitor {
        Monitor {
            kind,
            hours,
            email: true,
        }
    }

    /// Whether the monitor is well formed: `hours` from 1 to a year for every kind but
    /// `past_due`, which takes none.
    pub fn check(&self) -> Result<(), String> {
        match (self.kind.takes_hours(), self.hours) {
            (true, Some(h)) if (1..=MAX_MONITOR_HOURS).contains(&h) => Ok(()),
            (true, Some(h)) => Err(format!(
                "The {} monitor's hours must be from 1 to {MAX_MONITOR_HOURS}, not {h}.",
                self.kind.as_str()
            )),
            (true, None) => Err(format!("The {} monitor needs hours.", self.kind.as_str())),
            (false, None) => Ok(()),
            (false, Some(_)) => Err(format!(
                "The {} monitor takes no hours.",
                self.kind.as_str()
            )),
        }
    }

    /// What names the monitor in alert records, tick marks and the list's filter: its kind
    /// and hours (`unassigned-2`, `past_due`). Two monitors with one name are one.
    pub fn id(&self) -> String {
        match self.hours {
            Some(h) => format!("{}-{h}", self.kind.as_str()),
            None => self.kind.as_str().to_string(),
        }
    }

    /// What an alert says the ticket is, e.g. "unassigned for more than 2 hours".
    pub fn describe(&self) -> String {
        let h = self.hours.unwrap_or(0);
        let hours = if h == 1 {
            "1 hour".to_string()
        } else {
            format!("{h} hours")
        };
        match self.kind {
            MonitorKind::PastDue => "past its due date".to_string(),
            MonitorKind::DueIn => format!("due within {hours}"),
            MonitorKind::Unassigned => format!("unassigned for more than {hours}"),
            MonitorKind::Open => format!("open for more than {hours}"),
            MonitorKind::Inactive => format!("without an update for more than {hours}"),
            MonitorKind::Stale => format!("without word from the requester for more than {hours}"),
            MonitorKind::Waiting => format!("waiting on the requester for more than {hours}"),
        }
    }

    /// The latest watched time that matches at `now`: a ticket matches when its watched
    /// time is at or before it (and, for `due_in`, still ahead of `now`).
    pub fn threshold(&self, now: OffsetDateTime) -> OffsetDateTime {
        let hours = Duration::hours(i64::from(self.hours.unwrap_or(0)));
        match self.kind {
            MonitorKind::PastDue => now,
            MonitorKind::DueIn => now + hours,
            _ => now - hours,
        }
    }

    /// Whether `ticket` is in the state this monitor watches for at `now`.
    pub fn matches(&self, ticket: &Ticket, now: OffsetDateTime) -> bool {
        self.kind.watch().of(ticket).is_some_and(|at| {
            at <= self.threshold(now) && (self.kind != MonitorKind::DueIn || at > now)
        })
    }

    /// Which episode of the watched state the ticket is in: it changes when the state ends
    /// and can come back (a new due date, an assignment, a reply, a reopening), so one
    /// alert is sent per episode. `None` when the ticket is not watched at all.
    pub fn episode(&self, ticket: &Ticket) -> Option<[u8; 32]> {
        let at = self.kind.watch().of(ticket)?;
        let opened = ticket.active_since.unwrap_or(ticket.created_at);
        let mut stamp = [0u8; 32];
        stamp[..16].copy_from_slice(&at.unix_timestamp_nanos().to_be_bytes());
        stamp[16..].copy_from_slice(&opened.unix_timestamp_nanos().to_be_bytes());
        Some(stamp)
    }
}

/// A ticket time kept in a monitor index, for tickets neither resolved nor closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// The end of the due date (midnight UTC after it).
    Due,
    Opened,
    Unassigned,
    Activity,
    UserActivity,
    Waiting,
    /// Since when a resolved ticket has been resolved (for auto-close).
    Resolved,
}

impl Watch {
    pub const ALL: [Watch; 7] = [
        Watch::Due,
        Watch::Opened,
        Watch::Unassigned,
        Watch::Activity,
        Watch::UserActivity,
        Watch::Waiting,
        Watch::Resolved,
    ];

    /// The key segment of this index.
    pub fn tag(self) -> &'static str {
        match self {
            Watch::Due => "due",
            Watch::Opened => "opened",
            Watch::Unassigned => "unassigned",
            Watch::Activity => "activity",
            Watch::UserActivity => "user",
            Watch::Waiting => "waiting",
            Watch::Resolved => "resolved",
        }
    }

    /// The ticket's watched time, if the ticket is watched for it: every watch but
    /// `Resolved` is of tickets neither resolved nor closed.
    pub fn of(self, t: &Ticket) -> Option<OffsetDateTime> {
        if self == Watch::Resolved {
            return (t.status == Status::Resolved).then(|| t.status_since.unwrap_or(t.updated_at));
        }
        if matches!(t.status, Status::Resolved | Status::Closed) {
            return None;
        }
        match self {
            Watch::Due => due_end(t.due.as_deref()?),
            Watch::Opened => Some(t.active_since.unwrap_or(t.created_at)),
            Watch::Unassigned => t
                .assignee
                .is_none()
                .then(|| t.unassigned_since.unwrap_or(t.created_at)),
            Watch::Activity => [t.last_staff_at, t.last_user_at]
                .into_iter()
                .flatten()
                .chain([t.created_at])
                .max(),
            Watch::UserActivity => Some(t.last_user_at.unwrap_or(t.created_at)),
            Watch::Waiting => {
                (t.status == Status::Waiting).then(|| t.status_since.unwrap_or(t.updated_at))
            }
            Watch::Resolved => None,
        }
    }
}

/// When a due date (`YYYY-MM-DD`) has passed: the midnight (UTC) that ends it.
fn due_end(due: &str) -> Option<OffsetDateTime> {
    let day = crate::tickets::parse_day(due)?;
    Some(day.next_day()?.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Priority, TicketType};
    use time::macros::datetime;

    fn ticket() -> Ticket {
        let at = datetime!(2026-12-01 09:00 UTC);
        Ticket {
            active_since: Some(at),
            status_since: Some(at),
            unassigned_since: Some(at),
            last_user_at: Some(at),
            ..Ticket::fresh(
                1,
                "acme",
                TicketType::Question,
                "printer",
                "ann@example.com",
                at,
            )
        }
    }

    #[test]
    fn hours_are_checked_per_kind() {
        assert!(Monitor::new(MonitorKind::PastDue, None).check().is_ok());
        assert!(Monitor::new(MonitorKind::PastDue, Some(2)).check().is_err());
        assert!(Monitor::new(MonitorKind::Stale, None).check().is_err());
        assert!(Monitor::new(MonitorKind::Stale, Some(0)).check().is_err());
        assert!(
            Monitor::new(MonitorKind::Stale, Some(MAX_MONITOR_HOURS + 1))
                .check()
                .is_err()
        );
        assert!(Monitor::new(MonitorKind::Stale, Some(MAX_MONITOR_HOURS))
            .check()
            .is_ok());
        assert!("late".parse::<MonitorKind>().is_err());
        for k in MonitorKind::ALL {
            assert_eq!(k.as_str().parse::<MonitorKind>(), Ok(k));
        }
    }

    #[test]
    fn each_kind_matches_after_its_hours_and_not_before() {
        let t = ticket();
        let start = datetime!(2026-12-01 09:00 UTC);
        for kind in [
            MonitorKind::Unassigned,
            MonitorKind::Open,
            MonitorKind::Inactive,
            MonitorKind::Stale,
        ] {
            let m = Monitor::new(kind, Some(2));
            assert!(!m.matches(&t, start + Duration::minutes(119)), "{kind:?}");
            assert!(m.matches(&t, start + Duration::minutes(121)), "{kind:?}");
        }
        let waiting = Monitor::new(MonitorKind::Waiting, Some(2));
        assert!(!waiting.matches(&t, start + Duration::hours(5)));
        let w = Ticket {
            status: Status::Waiting,
            ..ticket()
        };
        assert!(waiting.matches(&w, start + Duration::hours(5)));
    }

    #[test]
    fn due_dates_end_at_midnight_and_due_in_stops_when_past() {
        let t = Ticket {
            due: Some("2026-12-03".into()),
            ..ticket()
        };
        let past = Monitor::new(MonitorKind::PastDue, None);
        let soon = Monitor::new(MonitorKind::DueIn, Some(24));
        assert!(!past.matches(&t, datetime!(2026-12-03 23:59 UTC)));
        assert!(past.matches(&t, datetime!(2026-12-04 00:00 UTC)));
        assert!(!soon.matches(&t, datetime!(2026-12-02 23:59 UTC)));
        assert!(soon.matches(&t, datetime!(2026-12-03 00:01 UTC)));
        assert!(!soon.matches(&t, datetime!(2026-12-04 00:01 UTC)));
        assert!(!past.matches(&ticket(), datetime!(2030-01-01 00:00 UTC)));
    }

    #[test]
    fn done_tickets_and_assigned_ones_are_not_watched() {
        let later = datetime!(2027-01-01 00:00 UTC);
        let done = Ticket {
            status: Status::Resolved,
            due: Some("2026-12-02".into()),
            ..ticket()
        };
        for kind in MonitorKind::ALL {
            assert!(!Monitor::new(kind, kind.takes_hours().then_some(1)).matches(&done, later));
        }
        let held = Ticket {
            assignee: Some("bo@acme.test".into()),
            unassigned_since: None,
            ..ticket()
        };
        assert!(!Monitor::new(MonitorKind::Unassigned, Some(1)).matches(&held, later));
    }

    #[test]
    fn staff_updates_end_inactivity_but_not_staleness() {
        let now = datetime!(2026-12-01 15:00 UTC);
        let t = Ticket {
            last_staff_at: Some(datetime!(2026-12-01 14:00 UTC)),
            ..ticket()
        };
        assert!(!Monitor::new(MonitorKind::Inactive, Some(2)).matches(&t, now));
        assert!(Monitor::new(MonitorKind::Stale, Some(2)).matches(&t, now));
    }

    #[test]
    fn an_episode_changes_when_the_state_ends_and_comes_back() {
        let m = Monitor::new(MonitorKind::PastDue, None);
        let t = Ticket {
            due: Some("2026-12-02".into()),
            ..ticket()
        };
        let first = m.episode(&t);
        assert!(first.is_some());
        let unchanged = Ticket {
            priority: Priority::High,
            ..t.clone()
        };
        assert_eq!(m.episode(&unchanged), first);
        let new_due = Ticket {
            due: Some("2026-12-05".into()),
            ..t.clone()
        };
        assert_ne!(m.episode(&new_due), first);
        let reopened = Ticket {
            active_since: Some(datetime!(2026-12-10 08:00 UTC)),
            ..t
        };
        assert_ne!(m.episode(&reopened), first);
        assert_eq!(
            Monitor::new(MonitorKind::Unassigned, Some(1)).id(),
            "unassigned-1"
        );
        assert_eq!(m.id(), "past_due");
    }
}
