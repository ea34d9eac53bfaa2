//! The dashboard's figures for one staff member: the tickets they may see by type and
//! status, opened and closed per day, their open assignments, what they raised, and who
//! is online. Owners, admins and managers read the counts kept with every ticket write; a
//! Tech's are counted over their own tickets.

use crate::{policy, Desk, DeskResult};
use postdesk_store::{Role, Staff, Status, Ticket, TicketType};
use std::collections::BTreeMap;
use time::Date;

/// Days the opened/closed series covers, today included.
pub const DASHBOARD_DAYS: i64 = 30;
/// Active within this many minutes counts as online.
const ONLINE_MINUTES: i64 = 5;

pub struct Dashboard {
    /// Tickets by (type, status), keyed by their names.
    pub counts: BTreeMap<(&'static str, &'static str), u64>,
    /// The first day of the series; `opened[i]` and `closed[i]` are `first_day + i`.
    pub first_day: Date,
    pub opened: Vec<usize>,
    pub closed: Vec<usize>,
    /// At most 10 open or waiting tickets assigned to them, newest first.
    pub assigned: Vec<Ticket>,
    /// The 10 newest they raised.
    pub raised: Vec<Ticket>,
    /// Staff active in the last minutes.
    pub online: Vec<String>,
}

fn key(ty: TicketType, st: Status) -> (&'static str, &'static str) {
    (ty.as_str(), st.as_str())
}

impl Desk {
    pub async fn dashboard(&self, staff: Staff) -> DeskResult<Dashboard> {
        self.run(move |desk| {
            let store = &desk.store;
            let now = desk.now();
            let first_day = (now - time::Duration::days(DASHBOARD_DAYS - 1)).date();
            let day_index = |d: Date| {
                let i = (d - first_day).whole_days();
                (0..DASHBOARD_DAYS).contains(&i).then_some(i as usize)
            };
            let days = DASHBOARD_DAYS as usize;
            let (mut opened, mut closed) = (vec![0usize; days], vec![0usize; days]);
            let mut counts = BTreeMap::new();
            if staff.role == Role::Tech {
                // A Tech's own tickets, read one at a time: counts and their days.
                store.visit_tickets(|t| {
                    if !policy::can_view_ticket(&staff, t) {
                        return;
                    }
                    *counts.entry(key(t.ticket_type, t.status)).or_default() += 1;
                    if let Some(i) = day_index(t.created_at.date()) {
                        opened[i] += 1;
                    }
                    if let Some(i) = t.closed_at.and_then(|c| day_index(c.date())) {
                        closed[i] += 1;
                    }
                })?;
            } else {
                for (_, ty, st, n) in store.ticket_counts()? {
                    *counts.entry(key(ty, st)).or_default() += n;
                }
                for (_, day, o, c) in store.daily_counts(first_day)? {
                    if let Some(i) = day_index(day) {
                        opened[i] += o as usize;
                        closed[i] += c as usize;
                    }
                }
            }
            let mut assigned = store.tickets_of(&staff.email, true, usize::MAX)?;
            assigned.retain(|t| matches!(t.status, Status::Open | Status::Waiting));
            assigned.truncate(10);
            Ok(Dashboard {
                counts,
                first_day,
                opened,
                closed,
                assigned,
                raised: store.tickets_of(&staff.email, false, 10)?,
                online: store.staff_seen_since(now - time::Duration::minutes(ONLINE_MINUTES))?,
            })
        })
        .await
    }
}
