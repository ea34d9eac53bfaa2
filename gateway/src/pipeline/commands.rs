//! Staff mail commands (`#status`, `#assign`, `#priority`, `#due`, `#note`) as ticket
//! changes, for a proven staff member the policy lets see the ticket.

use crate::GatewayError;
use postdesk_store::{Change, Priority, Staff, Status, Store};
use postdesk_threading::{parse_commands, Command};

/// What a staff reply's command lines amount to.
pub(super) enum StaffReply {
    Plain,
    Commands {
        note: bool,
        changes: Vec<Change>,
        rest: String,
    },
    /// Nothing is applied: the sender is told what was not understood.
    Rejected(Vec<String>),
}

/// The command lines of a proven staff member who may see the ticket (the policy was asked
/// before): the same changes the web UI's forms let them make.
pub(super) fn staff_commands(
    store: &Store,
    sender: &Staff,
    text: &str,
) -> Result<StaffReply, GatewayError> {
    let parsed = parse_commands(text);
    if parsed.commands.is_empty() && parsed.errors.is_empty() {
        return Ok(StaffReply::Plain);
    }
    let mut errors = parsed.errors;
    let mut changes = Vec::new();
    let mut note = false;
    for c in parsed.commands {
        match c {
            Command::Status(s) => match s.parse::<Status>() {
                Ok(s) => changes.push(Change::Status(s)),
                Err(e) => errors.push(e),
            },
            Command::Priority(p) => match p.parse::<Priority>() {
                Ok(p) => changes.push(Change::Priority(p)),
                Err(e) => errors.push(e),
            },
            Command::Due(d) => changes.push(Change::Due(Some(d))),
            Command::Note => note = true,
            Command::Assign(who) => {
                let who = who.unwrap_or_else(|| sender.email.clone());
                match store.staff(&who)? {
                    Some(s) => changes.push(Change::Assignee(Some(s.email))),
                    None => errors.push(format!("#assign {who}: not a staff member")),
                }
            }
        }
    }
    Ok(if errors.is_empty() {
        StaffReply::Commands {
            note,
            changes,
            rest: parsed.text,
        }
    } else {
        StaffReply::Rejected(errors)
    })
}
