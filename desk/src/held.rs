//! Mail held from non-participants: what a ticket opened from one is called and typed.

use postdesk_store::TicketType;
use postdesk_threading::{normalize_subject, split_type_prefix, TypePrefix};

/// The summary and type of a ticket opened from a held mail with this subject: reply
/// prefixes and the `[#N]` tag of the ticket it came into dropped, a type prefix honoured.
pub fn ticket_from_subject(subject: &str) -> (String, TicketType) {
    let mut s = normalize_subject(subject);
    if let Some(rest) = s.strip_prefix("[#") {
        if let Some((digits, after)) = rest.split_once(']') {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                s = normalize_subject(after);
            }
        }
    }
    let (prefix, summary) = split_type_prefix(&s);
    let ticket_type = match prefix {
        TypePrefix::Incident => TicketType::Incident,
        TypePrefix::Bug => TicketType::Bug,
        TypePrefix::Question => TicketType::Question,
    };
    let summary: String = summary.chars().take(300).collect();
    if summary.is_empty() {
        ("(no subject)".into(), ticket_type)
    } else {
        (summary, ticket_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_prefixes_go() {
        assert_eq!(
            ticket_from_subject("Re: [#12] Bug: printer on fire"),
            ("printer on fire".into(), TicketType::Bug)
        );
        assert_eq!(
            ticket_from_subject("  "),
            ("(no subject)".into(), TicketType::Question)
        );
        assert_eq!(
            ticket_from_subject("[#x] odd"),
            ("[#x] odd".into(), TicketType::Question)
        );
    }
}
