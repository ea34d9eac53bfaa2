//! What a message says, bounded: its display text (quotes and signature stripped, the
//! first 256 KiB looked at, 100 KB kept), its attachments (at most 100 stored), the ids
//! it answers (the newest few), and the Message-ID a delivery report is about.

use crate::GatewayError;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use postdesk_store::{AttachmentRef, Store};
use postdesk_threading::{html_to_text, strip_reply, strip_signature};

/// Most body text looked at for display: a reply's new text is near its top, and this
/// bounds the work of stripping whatever the size of the mail (the original is kept whole).
const MAX_BODY_TEXT: usize = 256 * 1024;
/// Most text a ticket entry keeps; the rest is in the original.
const MAX_EVENT_TEXT: usize = 100_000;
/// Most attachments stored from one mail.
const MAX_ATTACHMENTS: usize = 100;
/// Most Message-IDs of In-Reply-To and References looked up (the newest).
pub(super) const MAX_IN_REPLY_TO: usize = 10;
pub(super) const MAX_REFERENCES: usize = 50;

/// The Message-IDs of an In-Reply-To or References header, the newest `keep`.
pub(super) fn id_list(v: &mail_parser::HeaderValue<'_>, keep: usize) -> Vec<String> {
    let ids: Vec<String> = v
        .as_text_list()
        .map(|l| {
            l.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let skip = ids.len().saturating_sub(keep);
    ids.into_iter().skip(skip).collect()
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub(super) fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The display text of a message: its text body (or its HTML as text), quotes stripped,
/// and a closing block that signs with the sender's name removed. Only the first
/// [`MAX_BODY_TEXT`] bytes are looked at and [`MAX_EVENT_TEXT`] kept; the original is whole.
pub(crate) fn display_text(msg: &Message<'_>) -> String {
    let sender_name = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .unwrap_or("")
        .to_string();
    let body = if !msg.text_body.is_empty()
        && msg
            .text_body
            .first()
            .and_then(|&i| msg.part(i))
            .is_some_and(|p| matches!(p.body, PartType::Text(_)))
    {
        msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
    } else if let Some(html) = msg.body_html(0) {
        html_to_text(truncated(&html, 4 * MAX_BODY_TEXT))
    } else {
        msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
    };
    let body_cut = body.len() > MAX_BODY_TEXT;
    let mut text = strip_signature(&strip_reply(truncated(&body, MAX_BODY_TEXT)), &sender_name);
    if body_cut || text.len() > MAX_EVENT_TEXT {
        text = truncated(&text, MAX_EVENT_TEXT).to_string();
        text.push_str("\n\n[… the rest of this message is in the original]");
    }
    text
}

/// The Message-ID a delivery report is about: from its returned message or headers part.
pub(super) fn reported_message_id(msg: &Message<'_>) -> Option<String> {
    msg.parts.iter().find_map(|part| {
        // A returned message parsed as such, or its headers carried as text or bytes.
        if let PartType::Message(inner) = &part.body {
            return inner.message_id().map(str::to_string);
        }
        let returned_headers = part.content_type().is_some_and(|ct| {
            ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("rfc822-headers") || s.eq_ignore_ascii_case("rfc822")
            })
        });
        let bytes: &[u8] = match &part.body {
            PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref(),
            _ => return None,
        };
        if !returned_headers {
            return None;
        }
        let headers = MessageParser::new().parse_headers(bytes)?;
        headers.message_id().map(str::to_string)
    })
}

/// The message's attachments, each stored once by content, at most [`MAX_ATTACHMENTS`];
/// and a note when there were more.
pub(super) fn attachments(
    store: &Store,
    msg: &Message<'_>,
) -> Result<(Vec<AttachmentRef>, Option<String>), GatewayError> {
    let mut out = Vec::new();
    let mut more = 0usize;
    for part in msg.attachments() {
        if out.len() >= MAX_ATTACHMENTS {
            more += 1;
            continue;
        }
        let contents = part.contents();
        let name: String = part
            .attachment_name()
            .map(|n| n.replace(['/', '\\', '\r', '\n'], "_"))
            .unwrap_or_else(|| "attachment".into())
            .chars()
            .take(200)
            .collect();
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        let sha256 = store.put_blob(contents)?;
        out.push(AttachmentRef {
            name,
            content_type,
            size: contents.len() as u64,
            sha256,
        });
    }
    let note = (more > 0).then(|| {
        format!("{more} attachment(s) beyond the first {MAX_ATTACHMENTS} not stored separately; they are in the original")
    });
    Ok((out, note))
}
