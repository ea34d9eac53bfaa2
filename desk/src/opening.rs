//! Opening a ticket on the web or through the API: by staff on someone's behalf (the
//! requester is mailed the first message, threaded and with a reply token, unless asked
//! not to), or by the requester in the portal.

use crate::address::email_address;
use crate::error::{DeskError, DeskResult};
use crate::fields::staff_member;
use crate::files::{store_files, NewFile};
use crate::service::Desk;
use crate::tickets::checked_text;
use postdesk_store::{
    Event, NewTicket, Org, Priority, Staff, Ticket, TicketAction, TicketType, Visibility,
};

/// Longest summary, in characters.
pub const MAX_SUMMARY: usize = 300;

/// A ticket a staff member opens for someone.
#[derive(Debug, Clone)]
pub struct TicketRequest {
    /// The organization's slug.
    pub org: String,
    pub requester: String,
    pub summary: String,
    pub text: String,
    /// question (default), incident or bug.
    pub ticket_type: Option<String>,
    /// low, normal (default), high or urgent.
    pub priority: Option<String>,
    pub assignee: Option<String>,
    pub files: Vec<NewFile>,
    /// Mail the first message to the requester (the default).
    pub notify: bool,
}

/// A request its requester opens in the portal (its fields checked by the portal's form).
#[derive(Debug, Clone)]
pub struct PortalRequest {
    pub org: String,
    /// The signed-in user's address, or the guest placeholder.
    pub requester: String,
    pub ticket_type: TicketType,
    pub summary: String,
    pub text: String,
    pub category: Option<String>,
    pub files: Vec<NewFile>,
}

/// A portal user's reply to their own ticket, with files.
pub struct RequesterReply {
    pub org: String,
    /// The signed-in user's address: only their own tickets take their replies.
    pub requester: String,
    pub ticket: u64,
    pub text: String,
    pub files: Vec<NewFile>,
}

/// A summary on one line, not empty, at most [`MAX_SUMMARY`] characters.
pub fn checked_summary(summary: &str) -> DeskResult<String> {
    // One line of printable text: it becomes a mail's Subject.
    let summary = summary
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if summary.is_empty() {
        return Err(DeskError::Invalid("the summary is empty".into()));
    }
    if summary.chars().count() > MAX_SUMMARY {
        return Err(DeskError::Invalid(format!(
            "the summary is longer than {MAX_SUMMARY} characters"
        )));
    }
    Ok(summary)
}

/// What the new-ticket form offers.
pub struct TicketChoices {
    /// Organizations, as (slug, name).
    pub orgs: Vec<(String, String)>,
    /// Staff who may be assigned, as (address, name).
    pub assignees: Vec<(String, String)>,
}

impl Desk {
    /// The organizations a ticket may be opened in and the staff it may be assigned to.
    pub async fn ticket_choices(&self) -> DeskResult<TicketChoices> {
        self.run(|desk| {
            Ok(TicketChoices {
                orgs: desk
                    .store
                    .orgs()?
                    .into_iter()
                    .map(|o| (o.slug, o.name))
                    .collect(),
                assignees: desk
                    .store
                    .staff_list()?
                    .into_iter()
                    .map(|s| (s.email, s.name))
                    .collect(),
            })
        })
        .await
    }

    /// `staff` opens a ticket for `r.requester`; the creator keeps seeing it whoever the
    /// contact becomes.
    pub async fn open_ticket(&self, staff: Staff, r: TicketRequest) -> DeskResult<(Ticket, Event)> {
        let requester = email_address(&r.requester).ok_or_else(|| {
            DeskError::Invalid(format!(
                "the requester {:?} is not an email address",
                r.requester.trim()
            ))
        })?;
        let summary = checked_summary(&r.summary)?;
        let text = checked_text(&r.text)?;
        if text.is_empty() {
            return Err(DeskError::Invalid("the text is empty".into()));
        }
        let ticket_type = match r.ticket_type.as_deref().map(str::trim) {
            None | Some("") => TicketType::Question,
            Some(t) => t.to_ascii_lowercase().parse().map_err(DeskError::Invalid)?,
        };
        let priority = match r.priority.as_deref().map(str::trim) {
            None | Some("") => Priority::Normal,
            Some(p) => p.to_ascii_lowercase().parse().map_err(DeskError::Invalid)?,
        };
        self.run(move |desk| {
            let org = desk.takes_tickets(&r.org)?;
            // Mail to one of our own addresses would come straight back in.
            if desk.store.org_for_address(&requester)?.is_some() {
                return Err(DeskError::Invalid(format!(
                    "{requester} is one of the desk's own addresses"
                )));
            }
            let assignee = match r.assignee.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(a) => {
                    Some(staff_member(a, &desk.store.staff_list()?).map_err(DeskError::Invalid)?)
                }
            };
            let attachments = store_files(&desk.store, &r.files)?;
            Ok(desk.store.open_ticket(&NewTicket {
                org: org.slug,
                requester,
                ticket_type,
                summary,
                text,
                category: None,
                priority,
                assignee,
                attachments,
                staff_author: Some(staff.email),
                quiet: !r.notify,
                at: desk.now(),
            })?)
        })
        .await
    }

    /// The requester opens a ticket in the portal; returns its number.
    /// A public reply by the ticket's requester (from the portal), with its files; it
    /// reopens a ticket that was waiting or done, as a reply by mail does.
    pub async fn reply_as_requester(&self, r: RequesterReply) -> DeskResult<()> {
        let text = checked_text(&r.text)?;
        if text.is_empty() {
            return Err(DeskError::Invalid("Write a reply.".into()));
        }
        self.run(move |desk| {
            desk.open_portal(&r.org)?;
            desk.store
                .ticket(r.ticket)?
                .filter(|t| t.org == r.org && t.requester == r.requester)
                .ok_or_else(|| DeskError::NotFound(format!("ticket {} not found", r.ticket)))?;
            let attachments = store_files(&desk.store, &r.files)?;
            desk.act(&TicketAction {
                ticket: r.ticket,
                author: r.requester.clone(),
                by_staff: false,
                text: Some((Visibility::Public, text)),
                attachments,
                changes: Vec::new(),
                at: desk.now(),
            })?;
            Ok(())
        })
        .await
    }

    /// Organization `slug`, if staff may open tickets in it (it exists and is active).
    pub(crate) fn takes_tickets(&self, slug: &str) -> DeskResult<Org> {
        let org = self
            .store
            .org(slug)?
            .ok_or_else(|| DeskError::Invalid(format!("no organization {slug:?}")))?;
        if org.deactivated_at.is_some() {
            return Err(DeskError::Conflict(format!(
                "{} is deactivated: it takes no new tickets",
                org.name
            )));
        }
        Ok(org)
    }

    /// Every organization's portal, by name, for the public list of portals.
    pub async fn portals(&self) -> DeskResult<Vec<Org>> {
        self.run(|desk| {
            let mut orgs = desk.store.orgs()?;
            orgs.retain(|o| o.deactivated_at.is_none());
            orgs.sort_by_key(|o| o.name.to_lowercase());
            Ok(orgs)
        })
        .await
    }

    pub async fn open_request(&self, r: PortalRequest) -> DeskResult<u64> {
        let summary = checked_summary(&r.summary)?;
        let text = checked_text(&r.text)?;
        if text.is_empty() {
            return Err(DeskError::Invalid("the description is empty".into()));
        }
        self.run(move |desk| {
            desk.open_portal(&r.org)?;
            let attachments = store_files(&desk.store, &r.files)?;
            let (ticket, _) = desk.store.open_ticket(&NewTicket {
                ticket_type: r.ticket_type,
                category: r.category,
                attachments,
                ..NewTicket::by_requester(&r.org, &r.requester, &summary, &text, desk.now())
            })?;
            Ok(ticket.number)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_one_line_and_bounded() {
        assert_eq!(checked_summary("  a\n\tb  ").unwrap(), "a b");
        assert_eq!(checked_summary("S\0x\x1b[31m\r\ny").unwrap(), "S x [31m y");
        assert!(checked_summary(" \n ").is_err());
        assert!(checked_summary(&"x".repeat(MAX_SUMMARY + 1)).is_err());
        assert!(checked_summary(&"é".repeat(MAX_SUMMARY)).is_ok());
    }
}
