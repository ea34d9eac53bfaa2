//! Staff commands on one ticket and the ticket's view: a reply or note (with files), field
//! changes, time, following, and the decision about held mail. Each is asked of the
//! policy first; a ticket the caller may not see is "not found", like a missing one.

use crate::costs::time_and_cost;
use crate::error::{DeskError, DeskResult};
use crate::fields::{changes, FieldContext, FieldEdit};
use crate::files::{store_files, NewFile};
use crate::policy;
use crate::service::Desk;
use postdesk_store::{
    Change, Event, HeldAction, HeldOutcome, Org, Staff, StoreError, Ticket, TicketAction,
    TicketFilter, Visibility,
};
use std::collections::BTreeMap;

/// Longest reply, note or first message accepted, in bytes.
pub const MAX_TEXT: usize = 100_000;

/// What a ticket's page or the API shows of it.
pub struct TicketView {
    pub ticket: Ticket,
    pub events: Vec<Event>,
    /// Every staff member (names, rates, the assignee choices).
    pub staff: Vec<Staff>,
    pub org: Option<Org>,
    /// What became of each held mail decided so far, by its event.
    pub held: BTreeMap<u64, HeldOutcome>,
}

/// A staff member's reply or note, field changes, or both, as one action.
#[derive(Debug, Clone, Default)]
pub struct Write {
    pub text: String,
    pub visibility: Option<Visibility>,
    pub files: Vec<NewFile>,
    pub fields: FieldEdit,
}

/// Trims a text, makes every line end a plain newline (a lone CR must not reach a mail
/// body), and checks its length; empty is allowed (the caller decides if it may be).
pub fn checked_text(text: &str) -> DeskResult<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim();
    if text.len() > MAX_TEXT {
        return Err(DeskError::Invalid(format!(
            "the text is longer than {MAX_TEXT} bytes"
        )));
    }
    Ok(text.to_string())
}

impl Desk {
    /// The ticket, if `staff` may see it; otherwise the answer a missing one gets.
    pub(crate) fn visible_ticket(&self, staff: &Staff, number: u64) -> DeskResult<Ticket> {
        self.store
            .ticket(number)?
            .filter(|t| policy::can_view_ticket(staff, t))
            .ok_or_else(|| DeskError::NotFound(format!("ticket {number} not found")))
    }

    /// A ticket the caller may see and its events, without what only the page shows
    /// (the API's view: the staff list and organization cost a tenth of its rate).
    pub async fn ticket_events(
        &self,
        staff: Staff,
        number: u64,
    ) -> DeskResult<(Ticket, u64, Vec<Event>)> {
        self.run(move |desk| {
            let ticket = desk.visible_ticket(&staff, number)?;
            let events = desk.store.events_for(number)?;
            let cost = time_and_cost(&ticket, &desk.store.staff_list()?).1;
            Ok((ticket, cost, events))
        })
        .await
    }

    /// The ticket and everything its page shows.
    pub async fn ticket_view(&self, staff: Staff, number: u64) -> DeskResult<TicketView> {
        self.run(move |desk| {
            let ticket = desk.visible_ticket(&staff, number)?;
            let events = desk.store.events_for(number)?;
            let mut held = BTreeMap::new();
            for e in events.iter().filter(|e| e.held) {
                if let Some(outcome) = desk.store.held_outcome(e.seq)? {
                    held.insert(e.seq, outcome);
                }
            }
            Ok(TicketView {
                org: desk.store.org(&ticket.org)?,
                staff: desk.store.staff_list()?,
                ticket,
                events,
                held,
            })
        })
        .await
    }

    /// A reply or note and field changes, applied together; returns the events appended
    /// (none when the fields asked for are as they are and there is no text).
    pub async fn write(&self, staff: Staff, number: u64, w: Write) -> DeskResult<Vec<Event>> {
        let text = checked_text(&w.text)?;
        if text.is_empty() && !w.files.is_empty() {
            return Err(DeskError::Invalid("files need a text to go with".into()));
        }
        self.run(move |desk| {
            let ticket = desk.visible_ticket(&staff, number)?;
            let field_changes = desk.field_changes(&ticket, &w.fields)?;
            if text.is_empty() && field_changes.is_empty() {
                return Ok(Vec::new());
            }
            let attachments = store_files(&desk.store, &w.files)?;
            let visibility = w.visibility.unwrap_or(Visibility::Public);
            desk.act(&TicketAction {
                ticket: number,
                author: staff.email.clone(),
                by_staff: true,
                text: (!text.is_empty()).then_some((visibility, text)),
                attachments,
                changes: field_changes,
                at: desk.now(),
            })
        })
        .await
    }

    /// Minutes worked on the ticket by `staff` (1 to 1440 at a time).
    pub async fn log_time(
        &self,
        staff: Staff,
        number: u64,
        minutes: u32,
    ) -> DeskResult<Vec<Event>> {
        if !(1..=1440).contains(&minutes) {
            return Err(DeskError::Invalid(
                "give the minutes worked, 1 to 1440".into(),
            ));
        }
        self.run(move |desk| {
            desk.visible_ticket(&staff, number)?;
            desk.act(&TicketAction {
                ticket: number,
                author: staff.email.clone(),
                by_staff: true,
                text: None,
                attachments: Vec::new(),
                changes: vec![Change::TimeSpent(minutes)],
                at: desk.now(),
            })
        })
        .await
    }

    /// The tickets `staff` may see that match `filter`, newest first, at most `limit`,
    /// each with what the work on it cost (cents, at today's rates).
    pub async fn tickets(
        &self,
        staff: Staff,
        filter: TicketFilter,
        limit: usize,
    ) -> DeskResult<Vec<(Ticket, u64)>> {
        self.run(move |desk| {
            let people = desk.store.staff_list()?;
            let list = desk
                .store
                .tickets_where(&filter, limit, |t| policy::can_view_ticket(&staff, t))?;
            Ok(list
                .into_iter()
                .map(|t| {
                    let cost = time_and_cost(&t, &people).1;
                    (t, cost)
                })
                .collect())
        })
        .await
    }

    /// The signed reply address (`org+TOKEN@domain`) through which `recipient` can write
    /// into the ticket, the one outbound mail to them carries in Reply-To. Handing it out
    /// lets its holder in: someone neither requester, CC nor staff is granted the ticket.
    pub async fn reply_address(
        &self,
        staff: Staff,
        number: u64,
        recipient: String,
    ) -> DeskResult<String> {
        if !policy::can_issue_reply_address(&staff) {
            return Err(DeskError::Forbidden(
                "reply addresses are issued by owners, admins and managers".into(),
            ));
        }
        let recipient = crate::address::email_address(&recipient)
            .ok_or_else(|| DeskError::Invalid("give ?for=EMAIL".into()))?;
        self.run(move |desk| {
            let ticket = desk.visible_ticket(&staff, number)?;
            let base = desk
                .store
                .org(&ticket.org)?
                .and_then(|o| o.addresses.first().cloned())
                .ok_or_else(|| DeskError::NotFound("the organization has no address".into()))?;
            if ticket.requester != recipient
                && !ticket.cc.contains(&recipient)
                && desk.store.staff(&recipient)?.is_none()
            {
                desk.store.grant_reply(number, &recipient)?;
            }
            let secret = desk.store.secret("reply-token")?;
            Ok(postdesk_threading::reply_address(
                &secret, number, &base, &recipient,
            ))
        })
        .await
    }

    /// `staff` starts or stops hearing of everything on the ticket.
    pub async fn follow(&self, staff: Staff, number: u64, follow: bool) -> DeskResult<()> {
        self.run(move |desk| {
            desk.visible_ticket(&staff, number)?;
            Ok(desk.store.set_following(number, &staff.email, follow)?)
        })
        .await
    }

    /// Staff decide about held mail `seq`: its sender becomes a CC, or it opens a ticket of
    /// its own. A decision taken already is a conflict.
    pub async fn decide_held(
        &self,
        staff: Staff,
        number: u64,
        seq: u64,
        open: bool,
    ) -> DeskResult<HeldOutcome> {
        self.run(move |desk| {
            let ticket = desk.visible_ticket(&staff, number)?;
            let action = if open {
                desk.takes_tickets(&ticket.org)?;
                let event = desk
                    .store
                    .events_for(number)?
                    .into_iter()
                    .find(|e| e.seq == seq && e.held)
                    .ok_or_else(|| {
                        DeskError::NotFound(format!("held mail {seq} on ticket {number}"))
                    })?;
                let subject = match event.inbound {
                    Some(inbound) => desk
                        .store
                        .decision(inbound, &ticket.org)?
                        .map(|d| d.subject)
                        .unwrap_or_default(),
                    None => String::new(),
                };
                let (summary, ticket_type) = crate::held::ticket_from_subject(&subject);
                HeldAction::OpenTicket {
                    summary,
                    ticket_type,
                }
            } else {
                HeldAction::Accept
            };
            desk.store
                .resolve_held(number, seq, &action, &staff.email, desk.now())
                .map_err(|e| match e {
                    StoreError::Invalid(why) => DeskError::Conflict(why),
                    StoreError::NotFound(what) => DeskError::NotFound(format!("{what} not found")),
                    other => other.into(),
                })
        })
        .await
    }

    /// The checked changes `edit` asks of `ticket`.
    pub(crate) fn field_changes(
        &self,
        ticket: &Ticket,
        edit: &FieldEdit,
    ) -> DeskResult<Vec<Change>> {
        if edit.is_empty() {
            return Ok(Vec::new());
        }
        let staff = self.store.staff_list()?;
        let org = self.store.org(&ticket.org)?;
        let categories = org.map(|o| o.portal.categories).unwrap_or_default();
        changes(
            edit,
            ticket,
            &FieldContext {
                staff: &staff,
                categories: &categories,
            },
        )
        .map_err(DeskError::Invalid)
    }

    /// Appends an action's events; a ticket gone meanwhile is "not found".
    pub(crate) fn act(&self, action: &TicketAction) -> DeskResult<Vec<Event>> {
        self.store.act_on_ticket(action).map_err(|e| match e {
            StoreError::NotFound(what) => DeskError::NotFound(format!("{what} not found")),
            StoreError::Invalid(why) => DeskError::Invalid(why),
            other => other.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_end_lines_plainly_and_are_bounded() {
        assert_eq!(checked_text(" b\r.\rc\r\nd ").unwrap(), "b\n.\nc\nd");
        assert!(checked_text(&"x".repeat(MAX_TEXT + 1)).is_err());
    }
}
