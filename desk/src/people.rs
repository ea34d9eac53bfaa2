//! A person's data: for their right of access and portability, everything held about one
//! address (staff and contact records, the tickets they are on, what they wrote, their
//! original messages and attachments) as one ZIP with a JSON manifest, written as the
//! store is read; for their right to erasure, the store's erasure (`Store::erase_person`)
//! and what the audit log says of it.

use crate::audit::{AuditAction, Done};
use crate::exports::{timestamp, Chunks};
use crate::{policy, Desk, DeskError, DeskResult};
use postdesk_store::{
    guest_request_by, AttachmentRef, Erased, Event, Staff, Store, StoreError, Ticket, Visibility,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use time::OffsetDateTime;
use zip::write::SimpleFileOptions;
use zip::ZipWriter;

/// The manifest's name inside the ZIP, and the format it says it is.
const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "postdesk-person-export/1";
/// The most characters of a file name kept in an entry's name.
const NAME_CHARS: usize = 80;

/// Why a person's ZIP could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PersonExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("write: {0}")]
    Io(#[from] std::io::Error),
}

impl From<PersonExportError> for DeskError {
    fn from(e: PersonExportError) -> DeskError {
        match e {
            PersonExportError::Store(e) => e.into(),
            other => DeskError::Internal(other.to_string()),
        }
    }
}

/// The address a person's data is asked for, as the store keeps addresses: lowercase
/// ASCII letters (an international local part, as SMTPUTF8 mail brings, kept as it is), a
/// local part and a domain, no spaces or angle brackets, at most 254 bytes.
pub fn person_address(email: &str) -> DeskResult<String> {
    let a = email.trim().to_ascii_lowercase();
    let well_formed = a.len() <= 254
        && a.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
    if well_formed {
        Ok(a)
    } else {
        Err(DeskError::Invalid(format!(
            "{:?} is not an email address.",
            email.trim()
        )))
    }
}

impl Desk {
    /// Everything held about `email` as a ZIP (owners and admins), streamed, and what the
    /// audit log says of it; at most [`crate::exports::MAX_EXPORTS`] exports of any kind
    /// at once.
    pub async fn person_export(&self, staff: Staff, email: String) -> DeskResult<(Chunks, Done)> {
        policy::require_personal_data(&staff)?;
        let email = person_address(&email)?;
        let done = {
            let email = email.clone();
            self.run(move |desk| desk.export_done(&email)).await?
        };
        let now = self.now();
        self.stream(move |store, sink| {
            let cut = sink.cut();
            let zip = ZipWriter::new_stream(sink);
            match write_person_zip(store, &email, now, zip) {
                Ok(mut sink) => {
                    if let Err(e) = sink.flush() {
                        cut.fail(DeskError::Internal(format!("person export: {e}")));
                    }
                }
                Err(e) => cut.fail(e.into()),
            }
        })
        .map(|chunks| (chunks, done))
    }

    /// What the audit log says of exporting `email`'s data: the address, or for someone
    /// erased their pseudonym (the log must not bring the address back).
    pub(crate) fn export_done(&self, email: &str) -> DeskResult<Done> {
        let named = self.store.erased_as(email)?.unwrap_or(email.to_string());
        Ok(Done::new(
            AuditAction::Exported,
            None,
            format!("person data of {named}"),
        ))
    }
}

impl Desk {
    /// Erases `email` (owners and admins): see `Store::erase_person`. A staff member is
    /// refused (they are removed from staff first).
    pub async fn erase_person(&self, staff: Staff, email: String) -> DeskResult<Erased> {
        policy::require_personal_data(&staff)?;
        let email = person_address(&email)?;
        self.run(move |desk| desk.erase_now(&email)).await
    }

    pub(crate) fn erase_now(&self, email: &str) -> DeskResult<Erased> {
        // Every mail of an organization names its address: erasing it would empty the desk.
        if self.store.org_for_address(email)?.is_some() {
            return Err(DeskError::Conflict(format!(
                "{email} is an organization's address, not a person's"
            )));
        }
        self.store
            .erase_person(email, &postdesk_threading::decoded_text)
            .map_err(|e| match e {
                StoreError::Invalid(why) => DeskError::Conflict(why),
                other => other.into(),
            })
    }
}

/// What the audit log says of an erasure: the pseudonym and the counts, not the address.
pub fn erasure_done(e: &Erased) -> Done {
    Done::new(
        AuditAction::Erasure,
        None,
        format!(
            "erased {}: {} tickets, {} entries, {} originals, {} of others' originals naming them, {} files, {} mails",
            e.pseudonym,
            e.tickets,
            e.entries,
            e.originals,
            e.others_originals,
            e.files,
            e.mails.len()
        ),
    )
}

/// How a person is on a ticket.
fn roles(t: &Ticket, email: &str) -> Vec<&'static str> {
    let mut roles = Vec::new();
    if t.requester == email {
        roles.push("requester");
    }
    if t.cc.iter().any(|c| c == email) {
        roles.push("cc");
    }
    if t.participants.iter().any(|p| p == email) {
        roles.push("participant");
    }
    if t.assignee.as_deref() == Some(email) {
        roles.push("assignee");
    }
    if t.created_by.as_deref() == Some(email) {
        roles.push("opened_it");
    }
    if t.followers.iter().any(|f| f == email) {
        roles.push("follower");
    }
    roles
}

/// A ZIP entry name for a file someone named: letters, digits, dots, dashes and
/// underscores kept, the rest `_`, never empty, never a path.
fn entry_name(name: &str) -> String {
    let kept: String = name
        .chars()
        .rev()
        .take(NAME_CHARS)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let kept = kept.trim_start_matches('.');
    if kept.is_empty() {
        "file".into()
    } else {
        kept.to_string()
    }
}

/// Whether `e` is what `email` wrote: by them, or a portal guest's request in their name.
fn wrote(e: &Event, email: &str) -> bool {
    e.author == email || guest_request_by(&e.text).as_deref() == Some(email)
}

/// Writes the ZIP of everything held about `email` (already in the store's form) at `now`
/// into `zip`; returns its writer once finished. Each ticket goes into a file of its own
/// (`tickets/N.json`) with its originals and attachments before the next is read, so
/// memory holds one ticket and the manifest's index, whatever the person holds.
pub fn write_person_zip<W: Write>(
    store: &Store,
    email: &str,
    now: OffsetDateTime,
    mut zip: ZipWriter<zip::write::StreamWriter<W>>,
) -> Result<W, PersonExportError> {
    let staff = store.staff(email)?;
    let at = |t: OffsetDateTime| {
        SimpleFileOptions::default().last_modified_time(
            zip::DateTime::try_from(time::PrimitiveDateTime::new(t.date(), t.time()))
                .unwrap_or_default(),
        )
    };
    // The tickets they are on, then those they wrote in without being on them (mail held
    // in someone else's ticket, a guest request, a staff member's notes).
    let mut numbers: BTreeMap<u64, Vec<&'static str>> = BTreeMap::new();
    for t in store.all_tickets() {
        let t = t?;
        let on = roles(&t, email);
        if !on.is_empty() {
            numbers.insert(t.number, on);
        }
    }
    let mut seq = 0;
    loop {
        let events = store.events_since(seq, 10_000)?;
        let Some(last) = events.last() else { break };
        seq = last.seq;
        for e in events.iter().filter(|e| wrote(e, email)) {
            numbers.entry(e.ticket).or_default();
        }
    }
    let mut index = Vec::new();
    let mut files = 0usize;
    for (number, on) in numbers {
        let Some(t) = store.ticket(number)? else {
            continue;
        };
        let mut events = Vec::new();
        for e in store.events_for(number)? {
            let theirs = wrote(&e, email);
            if !theirs && (on.is_empty() || e.visibility != Visibility::Public) {
                continue;
            }
            let mut entry = event_entry(&e, theirs);
            if theirs {
                let original = match e.inbound {
                    Some(id) => store.raw_message(id)?,
                    None => None,
                };
                if let Some(raw) = original {
                    let name = format!("messages/{}-{}.eml", t.number, e.seq);
                    zip.start_file(name.as_str(), at(e.at))?;
                    zip.write_all(&raw)?;
                    entry["original"] = json!(name);
                    files += 1;
                }
                let mut written = Vec::new();
                for (i, a) in e.attachments.iter().enumerate() {
                    let Some(bytes) = store.blob(&a.sha256)? else {
                        written.push(attachment_entry(a, None));
                        continue;
                    };
                    let name = format!("attachments/{}-{}/{}", e.seq, i + 1, entry_name(&a.name));
                    zip.start_file(name.as_str(), at(e.at))?;
                    zip.write_all(&bytes)?;
                    written.push(attachment_entry(a, Some(&name)));
                    files += 1;
                }
                entry["attachments"] = Value::Array(written);
            }
            events.push(entry);
        }
        let name = format!("tickets/{number}.json");
        zip.start_file(name.as_str(), at(t.updated_at))?;
        let ticket = json!({
            "number": t.number,
            "org": t.org,
            "summary": t.summary,
            "type": t.ticket_type.as_str(),
            "status": t.status.as_str(),
            "roles": on,
            "requester": t.requester,
            "created": timestamp(t.created_at),
            "updated": timestamp(t.updated_at),
            "events": events,
        });
        serde_json::to_writer_pretty(&mut zip, &ticket).map_err(std::io::Error::from)?;
        index.push(json!({
            "number": t.number,
            "org": t.org,
            "summary": t.summary,
            "roles": on,
            "file": name,
        }));
    }
    // Mail sent to them, as it was sent (with its files when they went with it).
    let mut sent = Vec::new();
    for item in store.outbox_items() {
        let item = item?;
        if item.recipient != email || item.raw.is_empty() {
            continue;
        }
        let name = format!("sent/{}-{}.eml", item.ticket, item.event);
        zip.start_file(name.as_str(), at(item.created_at))?;
        zip.write_all(&item.raw)?;
        if let Some(body) = item.files.body.as_deref() {
            zip.write_all(&store.blob(body)?.unwrap_or_default())?;
        }
        files += 1;
        sent.push(json!({
            "ticket": item.ticket,
            "kind": item.kind,
            "created": timestamp(item.created_at),
            "file": name,
        }));
    }
    // What became of each mail they sent (refusals included).
    let decisions: Vec<Value> = store
        .decisions_from(email)?
        .into_iter()
        .map(|d| {
            json!({
                "org": d.org,
                "message_id": d.message_id,
                "subject": d.subject,
                "outcome": d.outcome,
                "at": timestamp(d.at),
            })
        })
        .collect();
    let blocked_by: Vec<String> = store
        .orgs()?
        .into_iter()
        .filter_map(|o| match store.is_blocked(&o.slug, email) {
            Ok(true) => Some(Ok(o.slug)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?;
    let manifest = json!({
        "format": FORMAT,
        "email": email,
        "exported_at": timestamp(now),
        "staff": staff.map(|s| json!({
            "name": s.name,
            "role": s.role,
            "alerts": s.alerts,
            "hourly_rate_cents": s.hourly_rate_cents,
            "created": timestamp(s.created_at),
        })),
        "contact": {
            "automatic_mail": store.contact_alerts(email)?,
            "blocked_by": blocked_by,
        },
        "files": files,
        "tickets": index,
        "mail_sent_to_them": sent,
        "their_mail_received": decisions,
    });
    zip.start_file(MANIFEST, at(now))?;
    serde_json::to_writer_pretty(&mut zip, &manifest).map_err(std::io::Error::from)?;
    Ok(zip.finish()?.into_inner())
}

/// An event as the manifest lists it; `theirs` when the person wrote it.
fn event_entry(e: &Event, theirs: bool) -> Value {
    json!({
        "seq": e.seq,
        "kind": e.kind,
        "author": e.author,
        "by_them": theirs,
        "at": timestamp(e.at),
        "visibility": e.visibility,
        "text": e.text,
        "message_id": e.message_id,
    })
}

fn attachment_entry(a: &AttachmentRef, file: Option<&str>) -> Value {
    json!({
        "name": a.name,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "file": file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_stay_inside_their_folder() {
        assert_eq!(entry_name("report.pdf"), "report.pdf");
        assert_eq!(entry_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(entry_name("..."), "file");
        assert_eq!(entry_name(""), "file");
        assert_eq!(entry_name("Über uns.txt"), "_ber_uns.txt");
        assert_eq!(entry_name(&"a".repeat(500)).len(), NAME_CHARS);
    }
}
