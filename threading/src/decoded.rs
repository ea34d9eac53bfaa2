//! A mail as a reader sees it: every header decoded (RFC 2047 words, addresses with their
//! names) and every part decoded (base64, quoted-printable, a text's charset; a file's
//! bytes as they are), nested messages (a delivery report's) included. What an erasure searches for a person's
//! address, which the raw bytes hide in encoded forms.

use mail_parser::{HeaderValue, Message, MessageParser, PartType};

/// How deep nested messages are read (the parser bounds nesting too).
const MAX_DEPTH: usize = 3;

/// The decoded headers and text of `raw`; empty when it cannot be parsed.
pub fn decoded_text(raw: &[u8]) -> String {
    let mut out = String::new();
    if let Ok(Some(message)) = std::panic::catch_unwind(|| MessageParser::default().parse(raw)) {
        collect(&message, &mut out, 0);
    }
    out
}

fn collect(message: &Message<'_>, out: &mut String, depth: usize) {
    for part in &message.parts {
        for h in &part.headers {
            push_header(&h.value, out);
        }
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(t);
                out.push('\n');
            }
            // A file's bytes too (a CSV sent as application/octet-stream names people).
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                out.push_str(&String::from_utf8_lossy(b));
                out.push('\n');
            }
            PartType::Message(m) if depth < MAX_DEPTH => collect(m, out, depth + 1),
            _ => {}
        }
    }
}

fn push_header(value: &HeaderValue<'_>, out: &mut String) {
    match value {
        HeaderValue::Text(t) => out.push_str(t),
        HeaderValue::TextList(list) => {
            for t in list {
                out.push_str(t);
                out.push(' ');
            }
        }
        HeaderValue::Address(a) => {
            for addr in a.iter() {
                if let Some(name) = &addr.name {
                    out.push_str(name);
                    out.push(' ');
                }
                if let Some(address) = &addr.address {
                    out.push('<');
                    out.push_str(address);
                    out.push_str("> ");
                }
            }
        }
        _ => {}
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_and_parts_are_decoded() {
        let raw = b"From: =?utf-8?B?Uml0YSA8cml0YUB4LnRlc3Q+?= <other@x.test>\r\n\
Subject: =?utf-8?Q?call_rita=40x=2Etest?=\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\r\n\
V3JpdGUgdG8gcml0YUB4LnRlc3QgcGxlYXNlLg==\r\n";
        let text = decoded_text(raw);
        assert!(text.contains("call rita@x.test"), "{text}");
        assert!(text.contains("Write to rita@x.test please."), "{text}");
        assert!(text.contains("Rita <rita@x.test>"), "{text}");
        assert_eq!(decoded_text(b""), "");
    }
}
