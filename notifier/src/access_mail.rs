//! Mail that no ticket event causes: sign-in links for the portal and the staff desk, and
//! invitations of new staff members, as the desk asked for them (`SignInRequest`).
//! Rendered, DKIM-signed with the organization's key and queued in the same outbox.

use crate::NotifierError;
use askama::Template;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;
use postdesk_store::{OutboxItem, OutboxStatus, SignInRequest, Store};
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

/// Renders, signs and queues the sign-in mail the desk asked for; returns how many
/// requests were handled. One that can never be made (its organization is gone or has no
/// address) is dropped with an error in the log; a store error leaves it for the next pass.
pub(crate) fn queue_sign_in_mail(
    store: &Store,
    now: OffsetDateTime,
) -> Result<usize, NotifierError> {
    let requests = store.sign_in_requests(100)?;
    for (id, request) in &requests {
        let mail = match sign_in_mail(store, request, now) {
            Ok(item) => Some(item),
            Err(NotifierError::Render(why)) => {
                tracing::error!(org = %request.org, error = %why, "sign-in mail cannot be made; dropped");
                None
            }
            Err(e) => return Err(e),
        };
        store.fulfil_sign_in_request(*id, mail.as_ref())?;
    }
    Ok(requests.len())
}

/// The outbox item of one sign-in mail: rendered, and DKIM-signed with the organization's key.
fn sign_in_mail(
    store: &Store,
    m: &SignInRequest,
    now: OffsetDateTime,
) -> Result<OutboxItem, NotifierError> {
    let org = store
        .org(&m.org)?
        .ok_or_else(|| NotifierError::Render(format!("organization {} is gone", m.org)))?;
    let Some(from) = org.addresses.first() else {
        return Err(NotifierError::Render(format!(
            "organization {} has no address",
            org.slug
        )));
    };
    let render_err = |e: askama::Error| NotifierError::Render(e.to_string());
    let text = LinkText {
        intro: &m.intro,
        place: &m.place,
        link: &m.link,
        hours: m.hours,
        uses: m.uses,
        org_name: &org.name,
    }
    .render()
    .map_err(render_err)?;
    let html = LinkHtml {
        intro: &m.intro,
        place: &m.place,
        link: &m.link,
        hours: m.hours,
        uses: m.uses,
        org_name: &org.name,
    }
    .render()
    .map_err(render_err)?;
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let tag = data_encoding::BASE32_NOPAD
        .encode(&postdesk_store::random_bytes::<10>())
        .to_ascii_lowercase();
    let message_id = format!("signin.{tag}@{domain}");
    let mut raw = MessageBuilder::new()
        .from((org.name.replace(['\r', '\n'], " "), from.to_string()))
        .to(m.recipient.clone())
        .subject(format!("Your sign-in link for {}", m.place))
        .message_id(message_id.clone())
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .header("X-Auto-Response-Suppress", Raw::new("All"))
        .text_body(text)
        .html_body(html)
        .write_to_vec()?;
    if let Some(key) = store.dkim_key(&org.slug)? {
        raw = crate::sign(&raw, &key, domain)?;
    }
    Ok(OutboxItem {
        key: format!("signin:{tag}"),
        event: 0,
        ticket: 0,
        org: org.slug.clone(),
        recipient: m.recipient.clone(),
        kind: "sign_in_link".into(),
        message_id,
        raw,
        files: Default::default(),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
        created_at: now,
    })
}
