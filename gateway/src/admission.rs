//! What a message read from elsewhere than an SMTP session (an IMAP mailbox, a file of old
//! mail) is admitted as: the organization address it went to, its return path, its date,
//! and why it is refused, if it is (too large, bad lines, no header section, the whitelist).

use crate::checks::{check_shape, from_of, whitelist_verdict, Verdict};
use crate::pipeline::{id_list, MAX_IN_REPLY_TO, MAX_REFERENCES};
use postdesk_store::normalize_message_id;
use postdesk_store::{Org, Store};
use time::OffsetDateTime;

/// One message's admission to one organization.
pub(crate) struct Admission {
    /// The organization address it went to (its plus form kept, so reply tokens work);
    /// the organization's first address when the header names none of them.
    pub address: String,
    /// Its Return-Path (empty for `<>`, a bounce), else its From address.
    pub mail_from: String,
    /// The addresses its From, Sender, Reply-To, To and Cc name, lowercase (at most
    /// [`MAX_NAMED`]).
    pub named: Vec<String>,
    /// Its Date, if it has a readable one.
    pub date: Option<OffsetDateTime>,
    /// Why it is not taken, if it is not.
    pub refusal: Option<String>,
    /// Its Message-ID and those it answers (In-Reply-To, References), normalized.
    pub message_id: Option<String>,
    pub answers: Vec<String>,
}

/// The size and line limits live mail has.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub max_message_size: usize,
    pub max_line_length: usize,
}

/// Admits `raw` (or, with `oversize`, a message of that many bytes not read) to `org`.
pub(crate) fn admit(
    store: &Store,
    org: &Org,
    raw: &[u8],
    oversize: Option<u64>,
    limits: Limits,
) -> Admission {
    let headers = std::panic::catch_unwind(|| mail_parser::MessageParser::new().parse_headers(raw))
        .ok()
        .flatten();
    let address = headers
        .as_ref()
        .and_then(|h| delivered_to(store, org, h))
        .or_else(|| org.addresses.first().cloned())
        .unwrap_or_default();
    let refusal = if let Some(size) =
        oversize.or_else(|| (raw.len() > limits.max_message_size).then_some(raw.len() as u64))
    {
        Some(format!(
            "message of {size} bytes exceeds the limit of {} bytes",
            limits.max_message_size
        ))
    } else if let Some(problem) = check_shape(raw, limits.max_line_length) {
        Some(problem)
    } else {
        match &headers {
            None => Some("message has no readable header section".to_string()),
            Some(h) => match whitelist_verdict(store, org, &address, from_of(h).as_deref()) {
                Verdict::Accept => None,
                Verdict::Refuse(reason) => Some(reason),
            },
        }
    };
    Admission {
        address,
        mail_from: headers.as_ref().map(return_path).unwrap_or_default(),
        named: headers.as_ref().map(named).unwrap_or_default(),
        date: headers.as_ref().and_then(header_date),
        refusal,
        message_id: headers
            .as_ref()
            .and_then(|h| h.message_id())
            .map(normalize_message_id),
        answers: headers.as_ref().map(answers).unwrap_or_default(),
    }
}

/// What orders a message among others: its Date (seconds; none sorts last), its
/// Message-ID and those it answers.
pub(crate) struct ThreadHead {
    pub date: i64,
    pub message_id: Option<String>,
    pub answers: Vec<String>,
}

/// The [`ThreadHead`] of a message (or of its header section alone).
pub(crate) fn thread_head(raw: &[u8]) -> ThreadHead {
    let headers = std::panic::catch_unwind(|| mail_parser::MessageParser::new().parse_headers(raw))
        .ok()
        .flatten();
    ThreadHead {
        date: headers
            .as_ref()
            .and_then(header_date)
            .map_or(i64::MAX, |d| d.unix_timestamp()),
        message_id: headers
            .as_ref()
            .and_then(|h| h.message_id())
            .map(normalize_message_id),
        answers: headers.as_ref().map(answers).unwrap_or_default(),
    }
}

/// The most addresses of a message [`Admission::named`] keeps.
const MAX_NAMED: usize = 100;

/// The addresses a message's From, Sender, Reply-To, To and Cc name.
fn named(h: &mail_parser::Message<'_>) -> Vec<String> {
    [h.from(), h.sender(), h.reply_to(), h.to(), h.cc()]
        .into_iter()
        .flatten()
        .flat_map(|list| list.iter())
        .filter_map(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase())
        .take(MAX_NAMED)
        .collect()
}

/// The Message-IDs a message answers: its In-Reply-To and References (bounded).
fn answers(h: &mail_parser::Message<'_>) -> Vec<String> {
    let ids = |v: &mail_parser::HeaderValue<'_>, keep| -> Vec<String> {
        id_list(v, keep)
            .iter()
            .map(|m| normalize_message_id(m))
            .collect()
    };
    [
        ids(h.in_reply_to(), MAX_IN_REPLY_TO),
        ids(h.references(), MAX_REFERENCES),
    ]
    .concat()
}

fn header_date(headers: &mail_parser::Message<'_>) -> Option<OffsetDateTime> {
    headers
        .date()
        .and_then(|d| OffsetDateTime::from_unix_timestamp(d.to_timestamp()).ok())
}

/// The first of Delivered-To, X-Original-To, To, Cc that is an address of `org`.
fn delivered_to(store: &Store, org: &Org, headers: &mail_parser::Message<'_>) -> Option<String> {
    let trace = ["Delivered-To", "X-Original-To"]
        .into_iter()
        .filter_map(|h| headers.header_raw(h))
        .map(bare_address);
    let visible = [headers.to(), headers.cc()]
        .into_iter()
        .flatten()
        .flat_map(|list| list.iter())
        .filter_map(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase());
    trace
        .chain(visible)
        .find(|a| matches!(store.org_for_address(a), Ok(Some(o)) if o.slug == org.slug))
}

/// The return path of a message read from elsewhere: its Return-Path header (empty for
/// `<>`, a bounce), else its From address.
fn return_path(headers: &mail_parser::Message<'_>) -> String {
    match headers.header_raw("Return-Path") {
        Some(raw) => bare_address(raw),
        None => headers
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(|a| a.trim().to_ascii_lowercase())
            .unwrap_or_default(),
    }
}

/// `" <Someone@Example.com>\r\n"` -> `someone@example.com`.
fn bare_address(raw: &str) -> String {
    raw.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_lose_brackets_and_case() {
        assert_eq!(
            bare_address(" <Someone@Example.COM>\r\n"),
            "someone@example.com"
        );
        assert_eq!(bare_address("<>"), "");
    }
}
