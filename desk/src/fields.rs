//! The one parser of ticket field changes: the web form, the JSON API and staff mail
//! commands all describe what they want as a [`FieldEdit`] of typed-in text, and get back
//! the checked changes that differ from the ticket as it is.

use postdesk_store::{Change, Priority, Staff, Status, Ticket, TicketType, MAX_TICKET_CC};

use crate::address::{address_list, email_address};

/// What someone asks to change; `None` leaves a field as it is. For the fields that can be
/// empty, `Some(None)` (or an empty text) clears them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldEdit {
    pub status: Option<String>,
    pub ticket_type: Option<String>,
    pub priority: Option<String>,
    pub assignee: Option<Option<String>>,
    pub due: Option<Option<String>>,
    pub category: Option<Option<String>>,
    pub contact: Option<String>,
    /// The whole CC list, as typed (one per line or comma-separated).
    pub cc: Option<String>,
}

impl FieldEdit {
    pub fn is_empty(&self) -> bool {
        *self == FieldEdit::default()
    }
}

/// What a change is checked against besides the ticket.
pub struct FieldContext<'a> {
    /// Every staff member (an assignee must be one).
    pub staff: &'a [Staff],
    /// The organization's categories (a category must be one).
    pub categories: &'a [String],
}

/// Empty text means "none" for the clearable fields.
fn cleared(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The changes `edit` asks for that differ from `ticket`, each checked; the first wrong
/// value is named in the error (and nothing is changed).
pub fn changes(
    edit: &FieldEdit,
    ticket: &Ticket,
    cx: &FieldContext<'_>,
) -> Result<Vec<Change>, String> {
    let mut out = Vec::new();
    if let Some(s) = &edit.status {
        let s = s.trim().to_ascii_lowercase().parse::<Status>()?;
        if s != ticket.status {
            out.push(Change::Status(s));
        }
    }
    if let Some(t) = &edit.ticket_type {
        let t = t.trim().to_ascii_lowercase().parse::<TicketType>()?;
        if t != ticket.ticket_type {
            out.push(Change::Type(t));
        }
    }
    if let Some(p) = &edit.priority {
        let p = p.trim().to_ascii_lowercase().parse::<Priority>()?;
        if p != ticket.priority {
            out.push(Change::Priority(p));
        }
    }
    if let Some(d) = &edit.due {
        let d = match cleared(d) {
            None => None,
            Some(d) if postdesk_threading::valid_date(d) => Some(d.to_string()),
            Some(d) => return Err(format!("due {d:?} is not a date written YYYY-MM-DD")),
        };
        if d != ticket.due {
            out.push(Change::Due(d));
        }
    }
    if let Some(a) = &edit.assignee {
        let a = match cleared(a) {
            None => None,
            Some(a) => Some(staff_member(a, cx.staff)?),
        };
        if a != ticket.assignee {
            out.push(Change::Assignee(a));
        }
    }
    if let Some(c) = &edit.category {
        let c = match cleared(c) {
            None => None,
            Some(k) if cx.categories.iter().any(|x| x == k) => Some(k.to_string()),
            Some(k) => return Err(format!("{k:?} is not one of the organization's categories")),
        };
        if c != ticket.category {
            out.push(Change::Category(c));
        }
    }
    if let Some(c) = &edit.contact {
        let c = email_address(c)
            .ok_or_else(|| format!("the contact {:?} is not an email address", c.trim()))?;
        if c != ticket.requester {
            out.push(Change::Contact(c));
        }
    }
    if let Some(cc) = &edit.cc {
        let cc = address_list(cc).map_err(|e| format!("in the CC list, {e}"))?;
        if cc.len() > MAX_TICKET_CC {
            return Err(format!(
                "the CC list has {} addresses; at most {MAX_TICKET_CC}",
                cc.len()
            ));
        }
        if cc != ticket.cc {
            out.push(Change::Cc(cc));
        }
    }
    Ok(out)
}

/// The staff member an assignee names (by address, any case).
pub fn staff_member(who: &str, staff: &[Staff]) -> Result<String, String> {
    let who = who.trim_matches(['<', '>']).to_ascii_lowercase();
    staff
        .iter()
        .find(|s| s.email == who)
        .map(|s| s.email.clone())
        .ok_or_else(|| format!("{who} is not a staff member"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use postdesk_store::Role;

    fn ticket() -> Ticket {
        crate::fixtures::ticket("ann@example.org")
    }

    fn staff() -> Vec<Staff> {
        vec![crate::fixtures::staff("alex@acme.test", "Alex", Role::Tech)]
    }

    fn run(edit: FieldEdit) -> Result<Vec<Change>, String> {
        let staff = staff();
        let categories = vec!["Billing".to_string()];
        changes(
            &edit,
            &ticket(),
            &FieldContext {
                staff: &staff,
                categories: &categories,
            },
        )
    }

    #[test]
    fn only_what_differs_changes() {
        let edit = FieldEdit {
            status: Some("open".into()),
            priority: Some(" HIGH ".into()),
            assignee: Some(Some("Alex@Acme.test".into())),
            due: Some(Some(String::new())),
            category: Some(Some("Billing".into())),
            contact: Some("ann@example.org".into()),
            cc: Some("b@x.org, b@x.org".into()),
            ..FieldEdit::default()
        };
        assert_eq!(
            run(edit).unwrap(),
            vec![
                Change::Priority(Priority::High),
                Change::Assignee(Some("alex@acme.test".into())),
                Change::Category(Some("Billing".into())),
                Change::Cc(vec!["b@x.org".into()]),
            ]
        );
        assert_eq!(run(FieldEdit::default()).unwrap(), vec![]);
    }

    #[test]
    fn wrong_values_are_named() {
        for (edit, says) in [
            (
                FieldEdit {
                    status: Some("gone".into()),
                    ..FieldEdit::default()
                },
                "gone",
            ),
            (
                FieldEdit {
                    assignee: Some(Some("eve@evil.test".into())),
                    ..FieldEdit::default()
                },
                "not a staff member",
            ),
            (
                FieldEdit {
                    due: Some(Some("2026-02-30".into())),
                    ..FieldEdit::default()
                },
                "YYYY-MM-DD",
            ),
            (
                FieldEdit {
                    category: Some(Some("Nope".into())),
                    ..FieldEdit::default()
                },
                "categories",
            ),
            (
                FieldEdit {
                    contact: Some("not an address".into()),
                    ..FieldEdit::default()
                },
                "contact",
            ),
            (
                FieldEdit {
                    cc: Some(
                        (0..=MAX_TICKET_CC)
                            .map(|i| format!("p{i}@x.org\n"))
                            .collect(),
                    ),
                    ..FieldEdit::default()
                },
                "at most",
            ),
        ] {
            let e = run(edit).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
