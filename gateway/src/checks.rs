//! The checks every inbound message passes whatever way it came (SMTP, LMTP, IMAP): its
//! shape, its header section, and the receiving organization's sender whitelist.

use postdesk_store::{Org, Store};
use postdesk_threading::{check_reply_token, plus_part};

/// What the checks decided for one recipient organization.
pub(crate) enum Verdict {
    Accept,
    Refuse(String),
}

/// Whether `org` takes mail at `address` from the From address `from`. A sender the
/// organization blocked (spam) is refused whatever else holds (asked of the store's
/// in-memory lookups, as at RCPT). The whitelist
/// decides who may write to the organization as an end user; mail to a reply address whose
/// token was issued to `from` for one of the organization's tickets, and mail from a staff
/// address, are not refused by it (whether the sender is staff still needs its proof,
/// which the pipeline asks for).
pub(crate) fn whitelist_verdict(
    store: &Store,
    org: &Org,
    address: &str,
    from: Option<&str>,
) -> Verdict {
    if let Some(f) = from.filter(|f| matches!(store.is_blocked(&org.slug, f), Ok(true))) {
        return Verdict::Refuse(format!("<{f}> is blocked from writing to {address}"));
    }
    if org.allows_sender(from)
        || from.is_some_and(|f| holds_reply_token(store, &org.slug, address, f))
        || from.is_some_and(|f| matches!(store.staff(f), Ok(Some(_))))
    {
        Verdict::Accept
    } else {
        let domain = from.and_then(|a| a.rsplit_once('@')).map(|(_, d)| d);
        Verdict::Refuse(format!(
            "Sender domain {} is not allowed to write to {address}",
            domain.unwrap_or("(no From address)"),
        ))
    }
}

/// Whether `address` carries a reply token issued to `from` for a ticket of `org`.
fn holds_reply_token(store: &Store, org: &str, address: &str, from: &str) -> bool {
    let Some(token) = plus_part(address) else {
        return false;
    };
    let Ok(secret) = store.secret("reply-token") else {
        return false;
    };
    check_reply_token(&secret, token, from)
        .and_then(|ticket| store.ticket(ticket).ok().flatten())
        .is_some_and(|t| t.org == org)
}

/// The From address of a message, lowercase (`Some(None)` when it has headers but no From
/// address); `None` when it has no header section. Parser panics count as unreadable.
pub(crate) fn from_address(message: &[u8]) -> Option<Option<String>> {
    std::panic::catch_unwind(|| {
        let headers = mail_parser::MessageParser::new().parse_headers(message)?;
        Some(from_of(&headers))
    })
    .ok()
    .flatten()
}

/// The From address of a parsed header section, lowercase.
pub(crate) fn from_of(headers: &mail_parser::Message<'_>) -> Option<String> {
    headers
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase())
}

/// Why a message is refused for its lines, if it is: a line longer than the limit. Bare LF line endings are accepted as Postfix's
/// default does: only CRLF.CRLF ends DATA (smtp-proto), so "\n.\n" cannot smuggle a
/// second message, and mail from naive scripts is not lost.
pub(crate) fn check_shape(message: &[u8], max_line: usize) -> Option<String> {
    let too_long = message
        .split(|&b| b == b'\n')
        .any(|line| line.strip_suffix(b"\r").unwrap_or(line).len() > max_line);
    too_long.then(|| format!("Message has a line longer than {max_line} characters"))
}
