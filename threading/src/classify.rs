//! Recognises automatic mail (auto-replies, bulk and list mail, bounces) so nothing ever
//! answers it automatically, and delivery reports so they attach instead of opening tickets.

use mail_parser::{Message, MimeHeaders};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classification {
    /// Never send an automatic answer to this mail.
    pub automatic: bool,
    /// A delivery status report (`multipart/report`).
    pub delivery_report: bool,
    /// Why it is automatic, for the decision log (e.g. "Auto-Submitted: auto-replied").
    pub reasons: Vec<String>,
}

fn header_text<'a>(msg: &'a Message<'_>, name: &'a str) -> Option<&'a str> {
    msg.header_raw(name).map(str::trim)
}

/// Classifies a parsed message; `return_path` is the SMTP MAIL FROM (empty for bounces).
pub fn classify(msg: &Message<'_>, return_path: &str) -> Classification {
    let mut c = Classification::default();
    if let Some(v) = header_text(msg, "Auto-Submitted") {
        let token = v.split(';').next().unwrap_or("").trim();
        if !token.eq_ignore_ascii_case("no") {
            c.reasons.push(format!("Auto-Submitted: {token}"));
        }
    }
    if let Some(v) = header_text(msg, "Precedence") {
        let v = v.to_ascii_lowercase();
        if ["bulk", "junk", "list"].contains(&v.as_str()) {
            c.reasons.push(format!("Precedence: {v}"));
        }
    }
    for h in ["X-Autoreply", "X-Autorespond", "List-Id"] {
        if msg.header_raw(h).is_some() {
            c.reasons.push(format!("{h} header"));
        }
    }
    let rp = return_path
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    if rp.is_empty() {
        c.reasons.push("empty return path".into());
    }
    if let Some(ct) = msg.content_type() {
        if ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
        {
            c.delivery_report = true;
            c.reasons.push("delivery report (multipart/report)".into());
        }
    }
    c.automatic = !c.reasons.is_empty();
    c
}
