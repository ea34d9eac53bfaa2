//! Mail that no ticket event causes: sign-in links for the portal and the staff desk, and
//! invitations of new staff members.
//! Rendered, DKIM-signed with the organization's key and queued in the same outbox.

use crate::NotifierError;
use askama::Template;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;
use postdesk_store::{Org, OutboxItem, OutboxStatus, Store};
use time::OffsetDateTime;

#[derive(Template)]
#[template(path = "signin_link.txt")]
struct LinkText<'a> {
    intro: &'a str,
    place: &'a str,
    link: &'a str,
    hours: i64,
    uses: u32,
    org_name: &'a str,
}

#[derive(Template)]
#[template(path = "signin_link.html")]
struct LinkHtml<'a> {
    intro: &'a str,
    place: &'a str,
    link: &'a str,
    hours: i64,
    uses: u32,
    org_name: &'a str,
}

/// A sign-in link to send.
pub struct SignInMail<'a> {
    pub org: &'a Org,
    pub recipient: &'a str,
    /// "the Acme Support portal", "the Postdesk staff desk".
    pub place: &'a str,
    /// A first line saying why the mail comes (an invitation), or empty.
    pub intro: &'a str,
    pub link: &'a str,
    pub hours: i64,
    pub uses: u32,
}

/// Renders, signs and queues a sign-in link mail.
pub fn queue_sign_in_mail(
    store: &Store,
    m: &SignInMail<'_>,
    now: OffsetDateTime,
) -> Result<(), NotifierError> {
    let Some(from) = m.org.addresses.first() else {
        return Err(NotifierError::Render(format!(
            "organization {} has no address",
            m.org.slug
        )));
    };
    let render_err = |e: askama::Error| NotifierError::Render(e.to_string());
    let text = LinkText {
        intro: m.intro,
        place: m.place,
        link: m.link,
        hours: m.hours,
        uses: m.uses,
        org_name: &m.org.name,
    }
    .render()
    .map_err(render_err)?;
    let html = LinkHtml {
        intro: m.intro,
        place: m.place,
        link: m.link,
        hours: m.hours,
        uses: m.uses,
        org_name: &m.org.name,
    }
    .render()
    .map_err(render_err)?;
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let tag = data_encoding::BASE32_NOPAD
        .encode(&postdesk_store::random_bytes::<10>())
        .to_ascii_lowercase();
    let message_id = format!("signin.{tag}@{domain}");
    let mut raw = MessageBuilder::new()
        .from((m.org.name.replace(['\r', '\n'], " "), from.to_string()))
        .to(m.recipient.to_string())
        .subject(format!("Your sign-in link for {}", m.place))
        .message_id(message_id.clone())
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header("X-Auto-Response-Suppress", Raw::new("All"))
        .text_body(text)
        .html_body(html)
        .write_to_vec()?;
    if let Some(key) = store.dkim_key(&m.org.slug)? {
        raw = crate::sign(&raw, &key, domain)?;
    }
    store.enqueue_mail(&OutboxItem {
        key: format!("signin:{tag}"),
        event: 0,
        ticket: 0,
        org: m.org.slug.clone(),
        recipient: m.recipient.to_string(),
        kind: "sign_in_link".into(),
        message_id,
        raw,
        files: Default::default(),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
        created_at: now,
    })?;
    Ok(())
}
