//! The checks every inbound message passes whatever way it came (SMTP, LMTP, IMAP): its
//! shape, its header section, and the receiving organization's sender whitelist.

use postdesk_store::Store;

/// What the checks decided for one recipient organization.
pub(crate) enum Verdict {
    Accept,
    Refuse(String),
}

/// Whether `org` takes mail from a sender in `from_domain` at `address`.
pub(crate) fn whitelist_verdict(
    store: &Store,
    org: &str,
    address: &str,
    from_domain: Option<&str>,
) -> Verdict {
    let org = match store.org(org) {
        Ok(Some(o)) => o,
        _ => return Verdict::Refuse(format!("<{address}> is no longer served here")),
    };
    if org.allows_sender_domain(from_domain) {
        Verdict::Accept
    } else {
        Verdict::Refuse(format!(
            "Sender domain {} is not allowed to write to {address}",
            from_domain.unwrap_or("(no From address)"),
        ))
    }
}

/// The From domain of a message (`Some(None)` when it has headers but no From address);
/// `None` when it has no header section. Parser panics count as unreadable.
pub(crate) fn from_domain(message: &[u8]) -> Option<Option<String>> {
    std::panic::catch_unwind(|| {
        let headers = mail_parser::MessageParser::new().parse_headers(message)?;
        Some(
            headers
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .and_then(|a| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())),
        )
    })
    .ok()
    .flatten()
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
