//! Who a mail names besides its sender (To and Cc), within limits: a header of thousands of
//! addresses is read once and cut off with a recorded reason, and a ticket's CC list grows
//! only from its participants' mail, by a few addresses per mail.

use mail_parser::Message;
use postdesk_store::{Ticket, MAX_TICKET_CC};
use std::collections::HashSet;

/// Most To and Cc addresses of one mail that are looked at.
pub(crate) const MAX_ADDRESSES_READ: usize = 100;
/// Most addresses one mail adds to a ticket's CC list.
pub(crate) const MAX_NEW_CC_PER_MESSAGE: usize = 10;

/// `a` lowercased, if it is an address: a local part and a domain. (A quoted local part,
/// `"john doe"@host`, comes out of the parser as `@host`: no one to write to.)
pub(crate) fn usable_address(a: &str) -> Option<String> {
    let a = a.trim().to_ascii_lowercase();
    let (local, domain) = a.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !domain.contains(char::is_whitespace)).then_some(a)
}

/// The To and Cc addresses of a message, lowercase and each once, in order, at most
/// [`MAX_ADDRESSES_READ`]; and how many more it named.
pub(crate) fn named_addresses(msg: &Message<'_>) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut more = 0;
    for list in [msg.to(), msg.cc()].into_iter().flatten() {
        for a in list.iter() {
            let Some(address) = a.address().and_then(usable_address) else {
                continue;
            };
            if out.len() >= MAX_ADDRESSES_READ {
                more += 1;
            } else if seen.insert(address.clone()) {
                out.push(address);
            }
        }
    }
    (out, more)
}

/// The addresses a participant's mail adds to the ticket's CC list (`ticket` is `None` for
/// a new ticket, whose requester is `sender`), and why others named were not added.
pub(crate) fn new_cc(
    named: &[String],
    sender: &str,
    ticket: Option<&Ticket>,
    is_ours: impl Fn(&str) -> bool,
) -> (Vec<String>, Option<String>) {
    let requester = ticket.map_or(sender, |t| t.requester.as_str());
    let copied = ticket.map_or(&[][..], |t| t.cc.as_slice());
    let candidates: Vec<&String> = named
        .iter()
        .filter(|a| !is_ours(a) && *a != sender && *a != requester && !copied.contains(a))
        .collect();
    let room = MAX_TICKET_CC.saturating_sub(copied.len());
    let take = candidates.len().min(MAX_NEW_CC_PER_MESSAGE).min(room);
    let note = (take < candidates.len()).then(|| {
        format!(
            "{} address(es) named in To/Cc not copied on the ticket: at most \
             {MAX_NEW_CC_PER_MESSAGE} new per mail and {MAX_TICKET_CC} per ticket",
            candidates.len() - take
        )
    });
    (
        candidates[..take].iter().map(|a| a.to_string()).collect(),
        note,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Message<'_> {
        mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("parsed")
    }

    #[test]
    fn thousands_of_addresses_are_cut_off() {
        let many: Vec<String> = (0..5000).map(|i| format!("p{i}@x.test")).collect();
        let raw = format!(
            "From: a@x.test\r\nTo: {}\r\nCc: P1@X.test, c@y.test\r\n\r\nhi\r\n",
            many.join(", ")
        );
        let msg = parse(&raw);
        let (named, more) = named_addresses(&msg);
        assert_eq!(named.len(), MAX_ADDRESSES_READ);
        assert_eq!(more, 5000 + 2 - MAX_ADDRESSES_READ);
    }

    #[test]
    fn an_address_needs_a_local_part_and_a_domain() {
        assert_eq!(
            usable_address(" Bob@X.Test ").as_deref(),
            Some("bob@x.test")
        );
        for bad in ["@x.test", "bob@", "bob", "", "bob@x test"] {
            assert_eq!(usable_address(bad), None, "{bad:?}");
        }
        let raw = b"From: a@x.test\r\nTo: \"john doe\"@x.test, ann@x.test\r\n\r\nhi\r\n";
        let msg = mail_parser::MessageParser::default()
            .parse(&raw[..])
            .expect("parsed");
        assert_eq!(named_addresses(&msg).0, ["ann@x.test"]);
    }

    #[test]
    fn cc_grows_by_a_few_and_never_past_the_cap() {
        let named: Vec<String> = (0..30).map(|i| format!("p{i}@x.test")).collect();
        let (cc, note) = new_cc(&named, "a@x.test", None, |a| a == "p0@x.test");
        assert_eq!(cc.len(), MAX_NEW_CC_PER_MESSAGE);
        assert!(!cc.contains(&"p0@x.test".to_string()), "our own address");
        assert!(note.is_some());
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let full = Ticket {
            cc: (0..MAX_TICKET_CC).map(|i| format!("c{i}@y.test")).collect(),
            ..Ticket::fresh(
                1,
                "acme",
                postdesk_store::TicketType::Question,
                "",
                "r@x.test",
                at,
            )
        };
        let (cc, note) = new_cc(&named, "r@x.test", Some(&full), |_| false);
        assert!(cc.is_empty() && note.is_some());
        let (cc, note) = new_cc(&["c1@y.test".into()], "r@x.test", Some(&full), |_| false);
        assert!(cc.is_empty() && note.is_none(), "already copied");
    }
}
