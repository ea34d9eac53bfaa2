//! What a message says, bounded: its display text (quotes and signature stripped, the
//! first 256 KiB looked at, 100 KB kept), its attachments (at most 100 stored), the ids
//! it answers (the newest few), and the Message-ID a delivery report is about.

use crate::GatewayError;
use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use postdesk_store::{AttachmentRef, Store};
use postdesk_threading::{html_to_text, strip_reply, strip_signature};
use std::borrow::Cow;

/// Most body text looked at for display: a reply's new text is near its top, and this
/// bounds the work of stripping whatever the size of the mail (the original is kept whole).
const MAX_BODY_TEXT: usize = 256 * 1024;
/// Most text a ticket entry keeps; the rest is in the original.
const MAX_EVENT_TEXT: usize = 100_000;
/// Most attachments stored from one mail.
const MAX_ATTACHMENTS: usize = 100;
/// Most Message-IDs of In-Reply-To and References looked up (the newest).
pub(crate) const MAX_IN_REPLY_TO: usize = 10;
pub(crate) const MAX_REFERENCES: usize = 50;

/// The Message-IDs of an In-Reply-To or References header, the newest `keep`.
pub(crate) fn id_list(v: &mail_parser::HeaderValue<'_>, keep: usize) -> Vec<String> {
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

/// A file's bytes as they were sent. mail-parser hands a text part over as text: converted
/// from its charset, with what is not UTF-8 replaced; so a text file is decoded again from
/// the message's raw bytes (one linear pass), and is relayed to the requester unchanged.
fn file_bytes<'a>(raw: &'a [u8], part: &'a MessagePart<'_>) -> Cow<'a, [u8]> {
    if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
        return Cow::Borrowed(part.contents());
    }
    let range = part.raw_body_offset() as usize..part.raw_end_offset() as usize;
    let Some(encoded) = raw.get(range) else {
        return Cow::Borrowed(part.contents());
    };
    let (end, decoded) = match part.encoding {
        Encoding::None => return Cow::Borrowed(encoded),
        Encoding::Base64 => MessageStream::new(encoded).decode_base64_mime(b""),
        Encoding::QuotedPrintable => MessageStream::new(encoded).decode_quoted_printable_mime(b""),
    };
    if end == usize::MAX {
        Cow::Borrowed(part.contents())
    } else {
        decoded
    }
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
        let contents = file_bytes(msg.raw_message(), part);
        let contents = contents.as_ref();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_files_keep_their_bytes() {
        // Not UTF-8, bare LF and CR, NUL: what text decoding would change.
        let file = b"caf\xe9\nline\r\n\x00end\r";
        let b64 = data_encoding::BASE64.encode(file);
        let raw = format!(
            "From: a@client.test\r\nTo: b@x.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nSee the files.\r\n\
             --b\r\nContent-Type: text/plain; charset=iso-8859-1; name=a.txt\r\n\
             Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\n\
             {b64}\r\n\
             --b\r\nContent-Type: text/csv; name=b.csv\r\nContent-Transfer-Encoding: quoted-printable\r\n\
             Content-Disposition: attachment; filename=b.csv\r\n\r\n\
             caf=E9;1=0D=0A=00x\r\n\
             --b\r\nContent-Type: text/plain; name=c.txt\r\nContent-Disposition: attachment; filename=c.txt\r\n\r\n\
             plain 7bit\r\nsecond line\r\n\
             --b\r\nContent-Type: application/octet-stream; name=d.bin\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
        );
        let raw = raw.as_bytes();
        let msg = MessageParser::new().parse(raw).expect("parses");
        let files: Vec<(String, Vec<u8>)> = msg
            .attachments()
            .map(|p| {
                (
                    p.attachment_name().unwrap_or("").to_string(),
                    file_bytes(msg.raw_message(), p).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            files,
            [
                ("a.txt".to_string(), file.to_vec()),
                ("b.csv".to_string(), b"caf\xe9;1\r\n\x00x".to_vec()),
                ("c.txt".to_string(), b"plain 7bit\r\nsecond line".to_vec()),
                ("d.bin".to_string(), file.to_vec()),
            ]
        );
        assert_ne!(
            msg.attachment(0).map(|p| p.contents().to_vec()),
            Some(file.to_vec()),
            "the parser's text would have changed the file"
        );
    }
}
