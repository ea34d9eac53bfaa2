//! The staff desk's ticket list: the tickets a staff member may see, newest activity
//! first, under filters (status, type, organization, their relation to the ticket) and a
//! text search in summaries, requesters and messages, a page at a time, with counts by
//! status under the other filters.

use crate::DeskError;
use crate::{policy, Desk, DeskResult};
use postdesk_store::{Monitor, Role, Staff, Status, Ticket, TicketFilter};

/// How a ticket relates to the staff member looking ("my relation" filter).
pub const RELATIONS: [&str; 4] = ["raised", "assigned", "following", "cc"];
/// A text search reads at most this many of the most recently active tickets' messages.
const SEARCH_CAP: usize = 20_000;
/// An alert filter reads at most this many of the tickets its monitor matches.
const ALERT_CAP: usize = 20_000;

pub struct ListQuery {
    pub filter: TicketFilter,
    /// Only the tickets a monitor matches now: (organization, `Monitor::id`). They come
    /// longest in the monitor's state first.
    pub alert: Option<(String, String)>,
    /// One of [`RELATIONS`]; anything else is no relation filter.
    pub relation: Option<String>,
    /// Lowercased on use.
    pub text: Option<String>,
    /// 0 = the newest.
    pub page: usize,
    pub page_size: usize,
}

pub struct TicketList {
    /// This page's tickets.
    pub tickets: Vec<Ticket>,
    pub has_older: bool,
    /// The text search stopped at its cap: older tickets were not searched.
    pub capped: bool,
    /// Tickets by status (in `Status::ALL` order) under the filters but the status and
    /// the text.
    pub counts: [u64; 4],
    /// Every organization's slug, for the filter.
    pub orgs: Vec<String>,
    /// Every organization's monitors, for the alert filter (for those who see settings).
    pub monitors: Vec<(String, Monitor)>,
}

fn related(t: &Ticket, email: &str, relation: Option<&str>) -> bool {
    match relation {
        Some("raised") => t.requester == email,
        Some("assigned") => t.assignee.as_deref() == Some(email),
        Some("following") => t.followers.iter().any(|f| f == email),
        Some("cc") => t.cc.iter().any(|c| c == email),
        _ => true,
    }
}

impl Desk {
    pub async fn ticket_list(&self, staff: Staff, q: ListQuery) -> DeskResult<TicketList> {
        self.run(move |desk| {
            let store = &desk.store;
            let rel = q.relation.as_deref().filter(|r| RELATIONS.contains(r));
            let needle = q.text.as_deref().map(str::to_lowercase);
            let examined = std::cell::Cell::new(0usize);
            let matches = |t: &Ticket| {
                if !policy::can_view_ticket(&staff, t) || !related(t, &staff.email, rel) {
                    return false;
                }
                let Some(n) = needle.as_deref() else {
                    return true;
                };
                examined.set(examined.get() + 1);
                if examined.get() > SEARCH_CAP {
                    return false;
                }
                t.summary.to_lowercase().contains(n)
                    || t.requester.contains(n)
                    || store.events_for(t.number).is_ok_and(|events| {
                        events.iter().any(|e| e.text.to_lowercase().contains(n))
                    })
            };
            // One more than the pages up to this one tells whether an older page exists.
            let upto = (q.page + 1) * q.page_size;
            let mut tickets = match &q.alert {
                None => store.tickets_where(&q.filter, upto + 1, matches)?,
                Some((org, id)) => {
                    // Monitors are settings (the list's dropdown is not the only way in).
                    policy::require_settings_view(&staff)?;
                    let monitor = store
                        .monitors(org)?
                        .into_iter()
                        .find(|m| m.id() == *id)
                        .ok_or_else(|| {
                            DeskError::NotFound(format!("{org} has no monitor {id}."))
                        })?;
                    store
                        .matching(org, &monitor, desk.now(), ALERT_CAP)?
                        .into_iter()
                        .filter(|t| q.filter.matches(t) && matches(t))
                        .take(upto + 1)
                        .collect()
                }
            };
            let capped = examined.get() > SEARCH_CAP;
            let has_older = tickets.len() > upto;
            tickets.truncate(upto);
            let tickets = tickets.split_off((q.page * q.page_size).min(tickets.len()));
            let mut counts = [0u64; 4];
            let index = |s: Status| Status::ALL.iter().position(|x| *x == s).unwrap_or(0);
            let (org, ticket_type) = (&q.filter.org, q.filter.ticket_type);
            if staff.role == Role::Tech || rel.is_some() {
                store.visit_tickets(|t| {
                    if policy::can_view_ticket(&staff, t)
                        && related(t, &staff.email, rel)
                        && org.as_ref().is_none_or(|o| *o == t.org)
                        && ticket_type.is_none_or(|ty| ty == t.ticket_type)
                    {
                        counts[index(t.status)] += 1;
                    }
                })?;
            } else {
                for (o, ty, st, n) in store.ticket_counts()? {
                    if org.as_ref().is_none_or(|f| *f == o) && ticket_type.is_none_or(|f| f == ty) {
                        counts[index(st)] += n;
                    }
                }
            }
            let orgs = store.orgs()?.into_iter().map(|o| o.slug).collect();
            // Monitors are settings: those who may not see settings get no alert filter.
            let monitors = if policy::can_view_settings(&staff) {
                store
                    .all_monitors()?
                    .into_iter()
                    .flat_map(|(org, list)| list.into_iter().map(move |m| (org.clone(), m)))
                    .collect()
            } else {
                Vec::new()
            };
            Ok(TicketList {
                tickets,
                has_older,
                capped,
                counts,
                orgs,
                monitors,
            })
        })
        .await
    }
}
