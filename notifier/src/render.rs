//! Rendering an outbound mail: askama text and HTML bodies, threading headers (an
//! unguessable Message-ID keyed with the installation's secret, In-Reply-To, References),
//! the tagged subject, a per-recipient signed Reply-To, and Auto-Submitted. mail-builder
//! encodes every header, so user text (a summary with CR/LF, say) cannot inject headers.

use crate::NotifierError;
use askama::Template;
use hmac::{Hmac, Mac};
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;
use postdesk_store::{Change, Event, EventKind, Status, Ticket, MONITOR_ALERT_KIND};
use sha2::Sha256;

#[derive(Template)]
#[template(path = "acknowledgement.txt")]
struct AckText<'a> {
    number: u64,
    summary: &'a str,
    org_name: &'a str,
}

#[derive(Template)]
#[template(path = "acknowledgement.html")]
struct AckHtml<'a> {
    number: u64,
    summary: &'a str,
    org_name: &'a str,
}

#[derive(Template)]
#[template(path = "notification.txt")]
struct NoteText<'a> {
    intro: &'a str,
    body: &'a str,
    /// Files left out of the mail, or empty.
    note: &'a str,
    number: u64,
    summary: &'a str,
    org_name: &'a str,
}

#[derive(Template)]
#[template(path = "notification.html")]
struct NoteHtml<'a> {
    intro: &'a str,
    body: &'a str,
    note: &'a str,
    number: u64,
    summary: &'a str,
    org_name: &'a str,
}

/// A notification: a staff answer relayed to the requester, or an alert to staff.
pub(crate) struct Notification<'a> {
    /// The installation's key for the ids of outbound mail.
    pub secret: &'a [u8],
    pub number: u64,
    pub event: u64,
    pub summary: &'a str,
    pub org_name: &'a str,
    pub org_address: &'a str,
    /// Display name of the From (e.g. "Alex via Acme Support").
    pub from_name: &'a str,
    pub recipient: &'a str,
    pub reply_to: &'a str,
    pub thread: &'a [String],
    pub intro: &'a str,
    pub body: &'a str,
    /// `Auto-Submitted` value for machine-made mail; `None` for a person's answer.
    pub auto_submitted: Option<&'a str>,
    /// The recipient's one-click unsubscribe link (automatic mail, when the web UI's
    /// address is known).
    pub unsubscribe: Option<&'a str>,
}

/// The text and HTML of a notification, with `note` (files left out) under the message.
pub(crate) fn notification_texts(
    n: &Notification<'_>,
    note: &str,
) -> Result<(String, String), NotifierError> {
    let summary = one_line(n.summary);
    let text = NoteText {
        intro: n.intro,
        body: n.body,
        note,
        number: n.number,
        summary: &summary,
        org_name: n.org_name,
    }
    .render()
    .map_err(|e| NotifierError::Render(e.to_string()))?;
    let html = NoteHtml {
        intro: n.intro,
        body: n.body,
        note,
        number: n.number,
        summary: &summary,
        org_name: n.org_name,
    }
    .render()
    .map_err(|e| NotifierError::Render(e.to_string()))?;
    Ok((text, html))
}

/// A whole notification mail of `text` and `html` (from [`notification_texts`]).
pub(crate) fn notification(
    n: &Notification<'_>,
    text: String,
    html: String,
) -> Result<(String, Vec<u8>), NotifierError> {
    compose(&n.headers(&one_line(n.summary)), text, html)
}

/// The header of a notification whose body, carrying files, is stored apart: every field,
/// the body's `content_type` last, and the empty line that ends the header.
pub(crate) fn notification_head(
    n: &Notification<'_>,
    content_type: &[u8],
) -> Result<(String, Vec<u8>), NotifierError> {
    let summary = one_line(n.summary);
    let (mid, builder) = start(&n.headers(&summary));
    // An empty raw part writes nothing: the builder's fields alone.
    let mut head = builder
        .body(MimePart::raw(BodyPart::Text("".into())))
        .write_to_vec()?;
    head.extend_from_slice(content_type);
    head.extend_from_slice(b"\r\n");
    Ok((mid, head))
}

impl Notification<'_> {
    fn headers<'a>(&'a self, summary: &'a str) -> Headers<'a> {
        Headers {
            secret: self.secret,
            number: self.number,
            event: self.event,
            summary,
            org_address: self.org_address,
            from_name: self.from_name,
            recipient: self.recipient,
            reply_to: self.reply_to,
            thread: self.thread,
            auto_submitted: self.auto_submitted,
            unsubscribe: self.unsubscribe,
        }
    }
}

/// The MIME boundaries' tag for the files body of `event`'s mail of `kind`: the same every
/// time (a replayed event stores the same body once), and keyed, so no text written before
/// the mail can contain it.
pub(crate) fn boundary_tag(secret: &[u8], event: u64, kind: &str) -> String {
    let h = keyed(
        secret,
        &[b"mime-boundary", &event.to_be_bytes(), kind.as_bytes()],
    );
    data_encoding::BASE32_NOPAD
        .encode(&h[..15])
        .to_ascii_lowercase()
}

/// What every outbound mail's headers are made of.
struct Headers<'a> {
    secret: &'a [u8],
    number: u64,
    event: u64,
    /// Already on one line.
    summary: &'a str,
    org_address: &'a str,
    from_name: &'a str,
    recipient: &'a str,
    reply_to: &'a str,
    thread: &'a [String],
    auto_submitted: Option<&'a str>,
    unsubscribe: Option<&'a str>,
}

/// The message's header fields: threading headers, tagged subject, Outlook's conversation
/// headers, signed Reply-To, `Auto-Submitted` on machine mail, and with a link, RFC 8058's
/// one-click `List-Unsubscribe`. Returns the Message-ID too.
fn start<'x>(h: &Headers<'x>) -> (String, MessageBuilder<'x>) {
    let domain = h
        .org_address
        .rsplit_once('@')
        .map_or("localhost", |(_, d)| d);
    let mid = message_id(h.secret, h.number, h.event, h.recipient, domain);
    let mut builder = MessageBuilder::new()
        .from((one_line(h.from_name), h.org_address.to_string()))
        .to(h.recipient.to_string())
        .reply_to(h.reply_to.to_string())
        .subject(format!("[#{}] {}", h.number, h.summary))
        .header(
            "Thread-Topic",
            mail_builder::headers::text::Text::new(h.summary.to_string()),
        )
        .header(
            "Thread-Index",
            Raw::new(thread_index(
                h.secret,
                h.org_address,
                h.number,
                h.thread.len(),
            )),
        )
        .message_id(mid.clone());
    if let Some(value) = h.auto_submitted {
        builder = builder
            .header("Auto-Submitted", Raw::new(value))
            .header("X-Auto-Response-Suppress", Raw::new("All"));
    }
    // The link is made of the configured address and a token; a line break in it (a
    // mistyped setting) would start a header of its own, so such a link is left out.
    if let Some(url) = h.unsubscribe.filter(|u| !u.chars().any(char::is_control)) {
        builder = builder
            .header("List-Unsubscribe", Raw::new(format!("<{url}>")))
            .header(
                "List-Unsubscribe-Post",
                Raw::new("List-Unsubscribe=One-Click"),
            );
    }
    if let Some(last) = h.thread.last() {
        builder = builder.in_reply_to(last.clone());
        let refs: Vec<String> = h.thread.iter().rev().take(20).rev().cloned().collect();
        builder = builder.references(refs);
    }
    (mid, builder)
}

/// The whole message: the header fields and the two bodies.
fn compose(
    h: &Headers<'_>,
    text: String,
    html: String,
) -> Result<(String, Vec<u8>), NotifierError> {
    let (mid, builder) = start(h);
    let raw = builder.text_body(text).html_body(html).write_to_vec()?;
    Ok((mid, raw))
}

/// Everything an acknowledgement needs.
pub(crate) struct Acknowledgement<'a> {
    /// The installation's key for the ids of outbound mail.
    pub secret: &'a [u8],
    pub number: u64,
    pub event: u64,
    pub summary: &'a str,
    pub org_name: &'a str,
    pub org_address: &'a str,
    pub recipient: &'a str,
    pub reply_to: &'a str,
    /// Message-IDs of the ticket's thread, oldest first; the last is the mail answered.
    pub thread: &'a [String],
    /// The recipient's one-click unsubscribe link, when the web UI's address is known.
    pub unsubscribe: Option<&'a str>,
}

/// A keyed hash of `parts`, with a separator byte no part contains between them.
fn keyed(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new_from_slice(&[0]).expect("key"));
    for p in parts {
        m.update(p);
        m.update(&[0]);
    }
    m.finalize().into_bytes().into()
}

/// `pd.<keyed hash of ticket, event and recipient>@<domain>`: unique per recipient, and
/// unguessable without the installation's secret, so nobody can compute the id of a mail
/// sent to someone else and thread into that person's ticket with it.
pub(crate) fn message_id(
    secret: &[u8],
    ticket: u64,
    event: u64,
    recipient: &str,
    domain: &str,
) -> String {
    let h = keyed(
        secret,
        &[
            b"message-id",
            &ticket.to_be_bytes(),
            &event.to_be_bytes(),
            recipient.to_ascii_lowercase().as_bytes(),
        ],
    );
    let tag = data_encoding::BASE32_NOPAD
        .encode(&h[..16])
        .to_ascii_lowercase();
    format!("pd.{tag}@{domain}")
}

/// Outlook's conversation headers: `Thread-Topic` (the summary) and `Thread-Index`, a
/// 22-byte root that names the ticket followed by one 5-byte block per earlier message, so
/// Outlook keeps the ticket as one conversation in order. Keyed like the Message-ID.
fn thread_index(secret: &[u8], org_address: &str, ticket: u64, depth: usize) -> String {
    let root = keyed(
        secret,
        &[
            b"thread-index",
            org_address.as_bytes(),
            &ticket.to_be_bytes(),
        ],
    );
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(&root[..21]);
    for i in 0..depth.min(50) {
        let block = keyed(secret, &[&root, &(i as u64).to_be_bytes()]);
        bytes.extend_from_slice(&block[..5]);
    }
    data_encoding::BASE64.encode(&bytes)
}

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn acknowledgement(a: &Acknowledgement<'_>) -> Result<(String, Vec<u8>), NotifierError> {
    let summary = one_line(a.summary);
    let text = AckText {
        number: a.number,
        summary: &summary,
        org_name: a.org_name,
    }
    .render()
    .map_err(|e| NotifierError::Render(e.to_string()))?;
    let html = AckHtml {
        number: a.number,
        summary: &summary,
        org_name: a.org_name,
    }
    .render()
    .map_err(|e| NotifierError::Render(e.to_string()))?;
    compose(
        &Headers {
            secret: a.secret,
            number: a.number,
            event: a.event,
            summary: &summary,
            org_address: a.org_address,
            from_name: a.org_name,
            recipient: a.recipient,
            reply_to: a.reply_to,
            thread: a.thread,
            auto_submitted: Some("auto-replied"),
            unsubscribe: a.unsubscribe,
        },
        text,
        html,
    )
}

/// How a mail of one kind presents its event: the From's display name, the line above the
/// text, the text when it is not the event's own (a field change has none), Auto-Submitted.
pub(crate) struct Framing {
    pub from_name: String,
    pub intro: String,
    pub body: Option<String>,
    pub auto_submitted: Option<&'static str>,
}

/// What [`framing`] reads of the event and its ticket.
pub(crate) struct About<'a> {
    pub event: &'a Event,
    pub ticket: &'a Ticket,
    /// The author's staff name, or their address.
    pub author_name: &'a str,
    pub org_name: &'a str,
}

/// The framing of a mail of `kind` (every kind but the acknowledgement).
pub(crate) fn framing(kind: &str, a: &About<'_>) -> Framing {
    let (event, ticket, author_name) = (a.event, a.ticket, a.author_name);
    let alert = |intro: String| Framing {
        from_name: a.org_name.to_string(),
        intro,
        body: None,
        auto_submitted: Some("auto-generated"),
    };
    match kind {
        "staff_answer" => Framing {
            from_name: format!("{author_name} via {}", a.org_name),
            intro: if event.kind == EventKind::Created {
                format!("{author_name} opened this request for you:")
            } else {
                format!("{author_name} answered:")
            },
            body: None,
            auto_submitted: None,
        },
        "new_ticket_alert" if event.by_staff => alert(format!(
            "{author_name} opened a ticket for {}:",
            ticket.requester
        )),
        "new_ticket_alert" => alert(format!("New ticket from {}:", event.author)),
        // A follower reads a colleague's public answer as it went to the requester.
        "reply_alert" if event.by_staff => alert(format!(
            "{author_name} answered {}:",
            ticket.requester
        )),
        "reply_alert" => alert(format!("{} replied:", event.author)),
        "note_alert" => alert(format!("Internal note by {author_name}:")),
        "assigned_alert" => Framing {
            body: Some(format!("Requested by {}.", ticket.requester)),
            ..alert(format!("{author_name} assigned #{} to you.", ticket.number))
        },
        "resolved_notice" => Framing {
            body: Some(
                "If anything is still wrong, reply to this mail to reopen it.".to_string(),
            ),
            ..alert(format!(
                "{author_name} marked your request #{} as {}.",
                ticket.number,
                match &event.change {
                    Some(Change::Status(Status::Closed)) => "closed",
                    _ => "resolved",
                }
            ))
        },
        "auto_closed_notice" => Framing {
            body: Some(
                "If anything is still wrong, reply to this mail and it opens again.".to_string(),
            ),
            ..alert(format!(
                "Your request #{} was resolved and has had no reply since, so it is now closed.",
                ticket.number
            ))
        },
        MONITOR_ALERT_KIND => Framing {
            body: Some(format!(
                "Status: {}. Assignee: {}. Requested by {}.\n\nAnswer this mail to reply on the ticket, or begin it with command lines (#assign, #status, #due, #note) to act on it.",
                ticket.status.as_str(),
                ticket.assignee.as_deref().unwrap_or("nobody"),
                ticket.requester
            )),
            ..alert(format!(
                "Ticket #{} is {}.",
                ticket.number,
                event.monitor.map(|m| m.describe()).unwrap_or_default()
            ))
        },
        "held_alert" if event.suspected_spoofing => alert(format!(
            "Mail claiming to come from {} fails the DMARC check its domain asks for, so it may be forged. It is kept as an internal entry; nothing was sent or changed.",
            event.author
        )),
        "held_alert" => alert(format!(
            "{} wrote on this ticket but takes no part in it. The mail is kept as an internal entry: accept the sender as a CC, or open it as a ticket of its own, on the ticket's page.",
            event.author
        )),
        _ => Framing {
            auto_submitted: Some("auto-replied"),
            ..alert("Your commands were not understood, and nothing was changed:".to_string())
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_need_the_secret() {
        let a = message_id(b"one installation", 7, 3, "Bob@X.test", "acme.test");
        assert_eq!(
            a,
            message_id(b"one installation", 7, 3, "bob@x.test", "acme.test")
        );
        assert_ne!(
            a,
            message_id(b"another one", 7, 3, "bob@x.test", "acme.test")
        );
        assert_ne!(
            a,
            message_id(b"one installation", 7, 4, "bob@x.test", "acme.test")
        );
        assert!(!a.contains("t7") && !a.contains("e3"), "{a}");
    }

    #[test]
    fn user_text_cannot_add_headers() {
        let thread = vec!["first@client.test".to_string()];
        let (mid, raw) = acknowledgement(&Acknowledgement {
            secret: b"installation secret",
            number: 7,
            event: 3,
            summary: "Printer\r\nBcc: evil@x.test\nX-Evil: 1",
            org_name: "Acme\r\nX-Evil: 2",
            org_address: "acme@acme.test",
            recipient: "bob@customer.test",
            reply_to: "acme+t7-abc@acme.test",
            thread: &thread,
            unsubscribe: Some("https://desk.acme.test/unsubscribe/x\r\nX-Evil: 3"),
        })
        .expect("rendered");
        let text = String::from_utf8_lossy(&raw);
        let headers = text.split("\r\n\r\n").next().unwrap_or("");
        assert!(
            !headers
                .lines()
                .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Evil:")),
            "{headers}"
        );
        assert!(
            headers.contains("Subject: [#7] Printer Bcc: evil@x.test X-Evil: 1"),
            "{headers}"
        );
        assert!(
            headers.contains("In-Reply-To: <first@client.test>"),
            "{headers}"
        );
        assert!(
            mid.starts_with("pd.") && mid.ends_with("@acme.test"),
            "{mid}"
        );
        assert!(
            headers.contains("Thread-Topic: Printer Bcc: evil@x.test X-Evil: 1"),
            "{headers}"
        );
        let index = headers
            .lines()
            .find_map(|l| l.strip_prefix("Thread-Index: "))
            .unwrap_or("");
        let bytes = data_encoding::BASE64
            .decode(index.as_bytes())
            .expect("base64");
        assert_eq!(
            bytes.len(),
            22 + 5,
            "root plus one block for the one earlier message"
        );
        assert_eq!(
            &bytes[..22],
            &data_encoding::BASE64
                .decode(thread_index(b"installation secret", "acme@acme.test", 7, 0).as_bytes())
                .expect("b64")[..]
        );
    }
}
