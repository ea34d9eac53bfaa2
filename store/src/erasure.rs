//! Erasing a person: their address becomes a stable pseudonym everywhere the store keeps
//! it, what they wrote becomes "[erased]", their original messages and the files no one
//! else sent go, the mail about them loses its body; their opt-out and blocks stay, as
//! keyed hashes that still match their address.

use crate::codec::{decode, encode, key_num, num_key};
use crate::deletion::block_key;
use crate::engine::ConflictableTransactionError::Abort;
use crate::files::Kind;
use crate::message_ids::{mid_entry, mid_origin, mid_ticket};
use crate::tickets::save_ticket;
use crate::{
    guest_request_by, guest_request_text, AuditEntry, BellItem, BlockedSender, Change, Decision,
    Envelope, Event, OutboxItem, OutboxStatus, Principal, Store, StoreError, Ticket,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeSet;

/// What replaces the words of an erased person.
pub const ERASED_TEXT: &str = "[erased]";
/// The domain of every pseudonym (`.invalid` is reserved: mail to it never leaves).
const PSEUDONYM_DOMAIN: &str = "erased.invalid";
/// The store secret that keys pseudonyms and hashes.
const SECRET: &str = "erasure";

/// What one erasure changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Erased {
    /// The address that now stands for the person.
    pub pseudonym: String,
    /// Tickets the person was on.
    pub tickets: usize,
    /// Entries they wrote, now "[erased]".
    pub entries: usize,
    /// Their original messages deleted.
    pub originals: usize,
    /// Attachment contents deleted (those no one else's entry holds).
    pub files: usize,
    /// Outbound mails about them or to them whose body was dropped (unsent ones are
    /// cancelled).
    pub mails: Vec<String>,
    /// Other people's originals that named them, dropped (their text stays).
    pub others_originals: usize,
    /// Records that still hold the address afterwards (mail that came in meanwhile).
    pub left: usize,
}

/// Whether `c` may be part of an address's local part, or of its domain: letters and
/// digits of any script (`josérita@` is not `rita@`), and the local part's ASCII marks;
/// other characters (spaces, quotes “ ” « », dashes, CJK punctuation) are boundaries.
fn local_char(c: char) -> bool {
    c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

fn domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-'
}

/// The character that ends just before byte `i` of `bytes`, if it is valid UTF-8.
fn char_before(bytes: &[u8], i: usize) -> Option<char> {
    (1..=4.min(i)).find_map(|len| {
        std::str::from_utf8(&bytes[i - len..i])
            .ok()
            .and_then(|s| s.chars().next())
    })
}

/// The character that starts at byte `i` of `bytes`, if it is valid UTF-8.
fn char_at(bytes: &[u8], i: usize) -> Option<char> {
    (1..=4.min(bytes.len().saturating_sub(i))).find_map(|len| {
        std::str::from_utf8(&bytes[i..i + len])
            .ok()
            .and_then(|s| s.chars().next())
    })
}

/// Where `email` (lowercase) stands as a whole address in `lower` (lowercased ASCII):
/// not inside a longer one (`margarita@x` holds no `rita@x`, nor `rita@x.test.org`
/// `rita@x.test`).
fn address_spans(lower: &[u8], email: &[u8]) -> Vec<usize> {
    let n = email.len();
    if n == 0 || lower.len() < n {
        return Vec::new();
    }
    let mut spans = Vec::new();
    let mut i = 0;
    while i + n <= lower.len() {
        if &lower[i..i + n] == email {
            let before = !char_before(lower, i).is_some_and(local_char);
            let after = match char_at(lower, i + n) {
                None => true,
                Some('.') => !char_at(lower, i + n + 1).is_some_and(domain_char),
                Some(c) => !domain_char(c),
            };
            if before && after {
                spans.push(i);
                i += n;
                continue;
            }
        }
        i += 1;
    }
    spans
}

/// `text` with every whole occurrence of `needle` (lowercase), in any case, replaced by
/// `with`; `None` when there is none.
fn replace_ci(text: &str, needle: &str, with: &str) -> Option<String> {
    let spans = address_spans(text.to_ascii_lowercase().as_bytes(), needle.as_bytes());
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for at in spans {
        out.push_str(&text[rest..at]);
        out.push_str(with);
        rest = at + needle.len();
    }
    out.push_str(&text[rest..]);
    Some(out)
}

/// `text` without a shortened `email` at its end (a bell entry is cut at 200 characters:
/// `… rita@cust`), when what is left of it reaches past the `@`.
fn cut_partial(text: &str, email: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let at = email.find('@')?;
    (at + 2..email.len()).rev().find_map(|n| {
        let start = lower.len().checked_sub(n)?;
        let boundary = !char_before(lower.as_bytes(), start).is_some_and(local_char);
        (boundary && lower.ends_with(&email[..n]) && text.is_char_boundary(start))
            .then(|| format!("{}{ERASED_TEXT}", &text[..start]))
    })
}

/// Whether `bytes` hold `needle` (lowercase) as a whole address, in any case.
fn holds(bytes: &[u8], needle: &[u8]) -> bool {
    !address_spans(&bytes.to_ascii_lowercase(), needle).is_empty()
}

/// `email` replaced by `with` in a list; whether it was there.
fn swap_in(list: &mut [String], email: &str, with: &str) -> bool {
    let mut found = false;
    for a in list.iter_mut().filter(|a| *a == email) {
        *a = with.to_string();
        found = true;
    }
    found
}

impl Store {
    fn keyed_hash(&self, text: &str) -> Result<String, StoreError> {
        let key = match self.erasure_key.get() {
            Some(k) => *k,
            // Two first callers read the same secret (`secret` creates it once).
            None => {
                let k = self.secret(SECRET)?;
                *self.erasure_key.get_or_init(|| k)
            }
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key)
            .map_err(|_| StoreError::Corrupt("erasure secret".into()))?;
        mac.update(text.as_bytes());
        Ok(crate::directory::data_hex(&mac.finalize().into_bytes()))
    }

    /// The pseudonym that stands for `email` (lowercase) once erased: the same every time,
    /// and not guessable from the address without the store's secret.
    pub fn pseudonym(&self, email: &str) -> Result<String, StoreError> {
        let hash = self.keyed_hash(email)?;
        Ok(format!("erased-{}@{PSEUDONYM_DOMAIN}", &hash[..16]))
    }

    /// The pseudonym of `email` (lowercase) if it was erased.
    pub fn erased_as(&self, email: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .state
            .get(format!("erased/{}", self.hashed_form(email)?))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Where an erased person's opt-out of automatic mail is kept.
    pub(crate) fn hashed_noalerts_key(&self, email: &str) -> Result<String, StoreError> {
        Ok(format!("contact-noalerts/{}", self.hashed_form(email)?))
    }

    /// The form an erased person's opt-out and blocks are kept under: `#` and a keyed
    /// hash of `form` (an address in the form its lookups use).
    pub(crate) fn hashed_form(&self, form: &str) -> Result<String, StoreError> {
        Ok(format!("#{}", self.keyed_hash(form)?))
    }

    /// Erases `email` (lowercase; not a staff member's): see the module's comment. Safe to
    /// run again (a stopped erasure is finished by the next). `decoded` gives a stored
    /// mail's headers and text decoded (base64, quoted-printable, RFC 2047), where an
    /// address hides from a search of the raw bytes.
    pub fn erase_person(
        &self,
        email: &str,
        decoded: &dyn Fn(&[u8]) -> String,
    ) -> Result<Erased, StoreError> {
        if self.staff(email)?.is_some() {
            return Err(StoreError::Invalid(format!(
                "{email} is a staff member: remove them from staff first"
            )));
        }
        let pseudonym = self.pseudonym(email)?;
        let mut done = Erased {
            pseudonym: pseudonym.clone(),
            ..Erased::default()
        };
        let theirs = self.erase_from_events(email, &pseudonym, &mut done)?;
        let (touched, requested) = self.erase_from_tickets(email, &pseudonym, &theirs)?;
        done.tickets = touched;
        // Mail first: its stored bodies go with it, before other contents naming them are
        // looked for.
        self.erase_from_outbox(email, &pseudonym, &requested, &theirs.entries, &mut done)?;
        self.erase_mail_in(email, &pseudonym, &theirs, decoded, &mut done)?;
        self.erase_from_message_ids(email, &pseudonym)?;
        self.erase_from_bell(email, &pseudonym, &requested, &theirs.entries)?;
        self.erase_access(email)?;
        self.keep_opt_outs_hashed(email, &pseudonym)?;
        self.erase_from_audit(email, &pseudonym)?;
        self.state.insert(
            format!("erased/{}", self.hashed_form(email)?),
            pseudonym.as_bytes(),
        )?;
        self.flush()?;
        self.lookups.forget();
        done.left = self.records_holding(email, decoded)?;
        Ok(done)
    }

    /// Rewrites every ticket the person is on or named in; returns how many, and the
    /// tickets they requested (their own requests by a portal guest form too), whose
    /// summary is their words and becomes "[erased]".
    fn erase_from_tickets(
        &self,
        email: &str,
        pseudonym: &str,
        theirs: &Theirs,
    ) -> Result<(usize, BTreeSet<u64>), StoreError> {
        let mut touched = 0;
        let mut requested = BTreeSet::new();
        let on = |t: &Ticket| {
            t.requester == email
                || theirs.guest_tickets.contains(&t.number)
                || t.assignee.as_deref() == Some(email)
                || t.created_by.as_deref() == Some(email)
                || t.cc
                    .iter()
                    .chain(&t.participants)
                    .chain(&t.followers)
                    .any(|a| a == email)
                || t.minutes_logged.contains_key(email)
                || holds(t.summary.as_bytes(), email.as_bytes())
        };
        let numbers: Vec<u64> = self
            .all_tickets()
            .filter_map(|t| match t {
                Ok(t) if on(&t) => Some(Ok(t.number)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        for number in numbers {
            let key = num_key("ticket/", number);
            let summary = self
                .state
                .transaction(|tx| {
                    let Some(v) = tx.get(&key)? else {
                        return Ok(None);
                    };
                    let before: Ticket = decode(&v).map_err(Abort)?;
                    let mut t = before.clone();
                    let asked = t.requester == email || theirs.guest_tickets.contains(&number);
                    if t.requester == email {
                        t.requester = pseudonym.to_string();
                    }
                    if asked {
                        t.summary = ERASED_TEXT.to_string();
                    } else if let Some(s) = replace_ci(&t.summary, email, pseudonym) {
                        t.summary = s;
                    }
                    for a in [&mut t.assignee, &mut t.created_by] {
                        if a.as_deref() == Some(email) {
                            *a = Some(pseudonym.to_string());
                        }
                    }
                    swap_in(&mut t.cc, email, pseudonym);
                    swap_in(&mut t.participants, email, pseudonym);
                    swap_in(&mut t.followers, email, pseudonym);
                    if let Some(m) = t.minutes_logged.remove(email) {
                        t.minutes_logged.insert(pseudonym.to_string(), m);
                    }
                    save_ticket(tx, Some(&before), &t)?;
                    Ok(Some(asked))
                })
                .map_err(StoreError::from)?;
            if let Some(asked) = summary {
                touched += 1;
                if asked {
                    requested.insert(number);
                }
            }
        }
        Ok((touched, requested))
    }

    /// Their entries become "[erased]" under the pseudonym; others' entries that name the
    /// address name the pseudonym. Returns what was theirs.
    fn erase_from_events(
        &self,
        email: &str,
        pseudonym: &str,
        done: &mut Erased,
    ) -> Result<Theirs, StoreError> {
        let mut theirs = Theirs::default();
        let mut batch = crate::engine::Batch::default();
        for kv in self.state.scan_prefix("ev/") {
            let (k, v) = kv?;
            let mut e: Event = decode(&v)?;
            let before = e.clone();
            if guest_request_by(&e.text).is_some_and(|a| a == email || a == pseudonym) {
                // A portal guest's request in their name: their words, under the address
                // they gave.
                e.text = guest_request_text(pseudonym, ERASED_TEXT);
                theirs.entries.insert(e.seq);
                theirs.guest_tickets.insert(e.ticket);
                done.entries += usize::from(e != before);
            } else if e.author == email || e.author == pseudonym {
                e.author = pseudonym.to_string();
                e.text = ERASED_TEXT.to_string();
                for a in &mut e.attachments {
                    theirs.files.insert(a.sha256.clone());
                    a.name = ERASED_TEXT.to_string();
                }
                theirs.inbound.extend(e.inbound);
                theirs.entries.insert(e.seq);
                done.entries += usize::from(before.author == email);
            } else {
                if let Some(text) = replace_ci(&e.text, email, pseudonym) {
                    e.text = text;
                }
                for a in &mut e.attachments {
                    if let Some(name) = replace_ci(&a.name, email, pseudonym) {
                        a.name = name;
                    }
                }
            }
            if let Some(m) = e
                .message_id
                .as_deref()
                .and_then(|m| replace_ci(m, email, pseudonym))
            {
                e.message_id = Some(m);
            }
            match &mut e.change {
                Some(Change::Assignee(Some(a))) | Some(Change::Contact(a)) if a == email => {
                    *a = pseudonym.to_string();
                }
                Some(Change::Cc(list)) => {
                    swap_in(list, email, pseudonym);
                }
                _ => {}
            }
            if e != before {
                batch.insert(k, encode(&e)?);
            }
        }
        self.state.apply_batch(batch)?;
        Ok(theirs)
    }

    /// Their inbound mail (by envelope, header or entry): the original deleted, the
    /// envelope and decisions under the pseudonym without the subject; then the files
    /// only they sent.
    fn erase_mail_in(
        &self,
        email: &str,
        pseudonym: &str,
        theirs: &Theirs,
        decoded: &dyn Fn(&[u8]) -> String,
        done: &mut Erased,
    ) -> Result<(), StoreError> {
        let mut inbound: BTreeSet<u64> = theirs.inbound.clone();
        let mut batch = crate::engine::Batch::default();
        for kv in self.state.scan_prefix("decision/") {
            let (k, v) = kv?;
            let mut d: Decision = decode(&v)?;
            let before = d.clone();
            if d.from == email || d.from == pseudonym || inbound.contains(&d.inbound) {
                inbound.insert(d.inbound);
                d.from = pseudonym.to_string();
                d.subject = ERASED_TEXT.to_string();
            } else if let Some(s) = replace_ci(&d.subject, email, pseudonym) {
                d.subject = s;
            }
            for note in &mut d.notes {
                if let Some(n) = replace_ci(note, email, pseudonym) {
                    *note = n;
                }
            }
            if let crate::Outcome::Refused { reason } = &mut d.outcome {
                if let Some(r) = replace_ci(reason, email, pseudonym) {
                    *reason = r;
                }
            }
            if let Some(m) = d
                .message_id
                .as_deref()
                .and_then(|m| replace_ci(m, email, pseudonym))
            {
                d.message_id = Some(m);
            }
            if d != before {
                batch.insert(k, encode(&d)?);
            }
        }
        for kv in self.state.scan_prefix("envelope/") {
            let (k, v) = kv?;
            let id = key_num(&k).ok_or_else(|| StoreError::Corrupt("envelope key".into()))?;
            let mut env: Envelope = decode(&v)?;
            let before = env.clone();
            if env.mail_from == email || inbound.contains(&id) {
                inbound.insert(id);
                env.mail_from = pseudonym.to_string();
            }
            for r in &mut env.refused {
                if let Some(reason) = replace_ci(&r.reason, email, pseudonym) {
                    r.reason = reason;
                }
            }
            if env != before {
                batch.insert(k, encode(&env)?);
            }
        }
        self.state.apply_batch(batch)?;
        for id in inbound {
            // Mail the pipeline has yet to read keeps its original: it comes in as new.
            if self.state.contains_key(num_key("pending/", id))? {
                continue;
            }
            done.originals += usize::from(self.drop_original(id)?);
        }
        for sha in &theirs.files {
            if self.someone_else_holds(sha, pseudonym)? {
                continue;
            }
            done.files += usize::from(self.drop_blob(sha)?);
        }
        self.drop_originals_naming(email, decoded, done)
    }

    /// Other people's originals and attachment contents that name the person (a Cc, a
    /// subject, a delivery report about their mail) are dropped too, as retention drops
    /// originals: the tickets' text stays, with the pseudonym in their place. Reads every
    /// original once (an erasure is rare).
    fn drop_originals_naming(
        &self,
        email: &str,
        decoded: &dyn Fn(&[u8]) -> String,
        done: &mut Erased,
    ) -> Result<(), StoreError> {
        let needle = email.as_bytes();
        let names = |bytes: &[u8]| holds(bytes, needle) || holds(decoded(bytes).as_bytes(), needle);
        // Mail the pipeline has yet to read keeps its original: nothing acknowledged is lost.
        let pending = |id: Option<u64>| -> Result<bool, StoreError> {
            Ok(match id {
                Some(id) => self.state.contains_key(num_key("pending/", id))?,
                None => false,
            })
        };
        for kv in self.raw.iter() {
            let (k, v) = kv?;
            let id = <[u8; 8]>::try_from(k.as_ref()).ok().map(u64::from_be_bytes);
            if !pending(id)? && names(&v) {
                self.raw.remove(k)?;
                done.others_originals += 1;
            }
        }
        for kv in self.blobs.iter() {
            let (k, v) = kv?;
            if names(&v) {
                self.blobs.remove(k)?;
                done.files += 1;
            }
        }
        for (kind, count) in [
            (Kind::Raw, &mut done.others_originals),
            (Kind::Blob, &mut done.files),
        ] {
            for name in self.files.names(kind)? {
                let id = matches!(kind, Kind::Raw)
                    .then(|| name.parse().ok())
                    .flatten();
                if !pending(id)?
                    && self
                        .files
                        .read(kind, &name)?
                        .is_some_and(|bytes| names(&bytes))
                {
                    self.files.remove(kind, &name)?;
                    *count += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether an entry not by `pseudonym` holds attachment `sha`.
    fn someone_else_holds(&self, sha: &str, pseudonym: &str) -> Result<bool, StoreError> {
        for k in self.state.scan_prefix(format!("blobuse/{sha}/")).keys() {
            let Some(ticket) = key_num(&k?) else { continue };
            for e in self.events_for(ticket)? {
                if e.author != pseudonym && e.attachments.iter().any(|a| a.sha256 == sha) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Who sent a Message-ID: under the pseudonym; so are Message-IDs made of the address.
    fn erase_from_message_ids(&self, email: &str, pseudonym: &str) -> Result<(), StoreError> {
        let mut batch = crate::engine::Batch::default();
        // `<prefix><org>/<id>` (`midby/` adds `\0<sender>`, so its sender moves here too;
        // `rawmid/` has no org): the id and sender part only, whose `/` would otherwise
        // join the address.
        for (prefix, with_org) in [
            ("mid/", true),
            ("midfrom/", true),
            ("midby/", true),
            ("ourmid/", true),
            ("rawmid/", false),
        ] {
            for kv in self.state.scan_prefix(prefix) {
                let (k, v) = kv?;
                let Ok(key) = std::str::from_utf8(&k) else {
                    continue;
                };
                let rest = &key[prefix.len()..];
                let (org, id) = match rest.split_once('/').filter(|_| with_org) {
                    Some((org, id)) => (format!("{org}/"), id),
                    None => (String::new(), rest),
                };
                if let Some(id) = replace_ci(id, email, pseudonym) {
                    batch.remove(k);
                    batch.insert(format!("{prefix}{org}{id}").as_bytes(), v);
                }
            }
        }
        self.state.apply_batch(std::mem::take(&mut batch))?;
        for kv in self.state.scan_prefix("mid/") {
            let (k, v) = kv?;
            if let Some((inbound, _)) = mid_origin(&v).filter(|(_, from)| *from == email) {
                let ticket = mid_ticket(&v).unwrap_or(0);
                batch.insert(k, mid_entry(ticket, inbound, pseudonym));
            }
        }
        for kv in self.state.scan_prefix("midfrom/") {
            let (k, v) = kv?;
            if v.as_ref() == email.as_bytes() {
                batch.insert(k, pseudonym.as_bytes());
            }
        }
        self.state.apply_batch(batch).map_err(StoreError::from)
    }

    /// Mail to the person, mail about what they wrote, mail of the tickets they asked for
    /// (its subject is their summary) and any other mail that names them: the body dropped
    /// (its stored files body and its version without files too, and the files' names),
    /// unsent ones cancelled, the recipient under the pseudonym; their hourly counts go.
    /// Other mail of the tickets they were on stays as it was.
    fn erase_from_outbox(
        &self,
        email: &str,
        pseudonym: &str,
        requested: &BTreeSet<u64>,
        entries: &BTreeSet<u64>,
        done: &mut Erased,
    ) -> Result<(), StoreError> {
        let mut batch = crate::engine::Batch::default();
        let mut bodies = BTreeSet::new();
        for kv in self.state.scan_prefix("outbox/") {
            let (k, v) = kv?;
            let mut item: OutboxItem = decode(&v)?;
            let theirs = item.recipient == email
                || entries.contains(&item.event)
                || requested.contains(&item.ticket)
                || holds(&item.raw, email.as_bytes())
                || item
                    .files
                    .without_files
                    .as_deref()
                    .is_some_and(|w| holds(w, email.as_bytes()));
            if !theirs {
                continue;
            }
            done.mails.push(item.key.clone());
            bodies.extend(item.files.body.take());
            item.files.without_files = None;
            for f in item
                .files
                .attached
                .iter_mut()
                .chain(&mut item.files.left_out)
            {
                f.name = ERASED_TEXT.to_string();
            }
            item.raw = Vec::new();
            match &mut item.status {
                OutboxStatus::Pending => {
                    item.status = OutboxStatus::Failed {
                        reason: "cancelled: it named a person who was erased".into(),
                    };
                }
                OutboxStatus::Sent { via, .. } => *via = ERASED_TEXT.to_string(),
                OutboxStatus::Failed { reason } => {
                    if let Some(r) = replace_ci(reason, email, pseudonym) {
                        *reason = r;
                    }
                }
            }
            batch.remove(crate::outbox::pending_key(&item.key).as_bytes());
            if let Some(e) = item
                .last_error
                .as_deref()
                .and_then(|e| replace_ci(e, email, pseudonym))
            {
                item.last_error = Some(e);
            }
            if item.recipient == email {
                item.recipient = pseudonym.to_string();
                item.key = crate::event_mail_key(item.event, pseudonym);
                batch.remove(k);
            }
            batch.insert(format!("outbox/{}", item.key).as_bytes(), encode(&item)?);
        }
        for group in ["autosent", "alertsent"] {
            for k in self.state.scan_prefix(format!("{group}/{email}/")).keys() {
                batch.remove(k?);
            }
        }
        self.state.apply_batch(batch)?;
        // Mail written to the outbox folder (no relay) sits in the data folder too.
        for key in &done.mails {
            self.remove_delivered(key)?;
        }
        for sha in bodies {
            self.drop_blob(&sha)?;
        }
        Ok(())
    }

    /// Bell entries: those about what they wrote say only "[erased]"; those of a ticket
    /// they asked for lose its summary (the text after the ticket's number); any other
    /// names the pseudonym where it named them.
    fn erase_from_bell(
        &self,
        email: &str,
        pseudonym: &str,
        requested: &BTreeSet<u64>,
        entries: &BTreeSet<u64>,
    ) -> Result<(), StoreError> {
        let mut batch = crate::engine::Batch::default();
        for kv in self.state.scan_prefix("bell/") {
            let (k, v) = kv?;
            let mut b: BellItem = decode(&v)?;
            let mut text = replace_ci(&b.text, email, pseudonym).unwrap_or(b.text.clone());
            if let Some(cut) = cut_partial(&text, email) {
                text = cut;
            }
            if entries.contains(&b.event) {
                text = format!("#{}: {ERASED_TEXT}", b.ticket);
            } else if requested.contains(&b.ticket) {
                let number = format!("#{}", b.ticket);
                if let Some(at) = text.find(&number) {
                    text = format!("{} {ERASED_TEXT}", &text[..at + number.len()]);
                }
            }
            if text != b.text {
                b.text = text;
                batch.insert(k, encode(&b)?);
            }
        }
        Ok(self.state.apply_batch(batch)?)
    }

    /// Their portal sessions and sign-in links end; reply grants and sign-in mail
    /// requests for them go.
    fn erase_access(&self, email: &str) -> Result<(), StoreError> {
        for org in self.orgs()? {
            let principal = Principal::Portal {
                org: org.slug,
                email: email.to_string(),
            };
            self.end_all_sessions(&principal)?;
            self.revoke_login_links(&principal)?;
        }
        let mut batch = crate::engine::Batch::default();
        let tail = format!("/{email}");
        for k in self.state.scan_prefix("grant/").keys() {
            let k = k?;
            if k.ends_with(tail.as_bytes()) {
                batch.remove(k);
            }
        }
        for kv in self.state.scan_prefix("signinreq/") {
            let (k, v) = kv?;
            if decode::<crate::SignInRequest>(&v).is_ok_and(|r| r.recipient == email) {
                batch.remove(k);
            }
        }
        Ok(self.state.apply_batch(batch)?)
    }

    /// Their opt-out of automatic mail and every organization's block of them stay, under
    /// a keyed hash of the address that lookups still match.
    fn keep_opt_outs_hashed(&self, email: &str, pseudonym: &str) -> Result<(), StoreError> {
        let mut batch = crate::engine::Batch::default();
        let plain = format!("contact-noalerts/{email}");
        if self.state.contains_key(&plain)? {
            batch.remove(plain.as_bytes());
            batch.insert(self.hashed_noalerts_key(email)?.as_bytes(), &[]);
        }
        for org in self.orgs()? {
            let k = block_key(&org.slug, email);
            if let Some(v) = self.state.get(&k)? {
                let mut b: BlockedSender = decode(&v)?;
                b.sender = pseudonym.to_string();
                batch.remove(k.as_bytes());
                batch.insert(
                    self.hashed_block_key(&org.slug, email)?.as_bytes(),
                    encode(&b)?,
                );
            }
        }
        Ok(self.state.apply_batch(batch)?)
    }

    /// Audit entries that name the address name the pseudonym.
    fn erase_from_audit(&self, email: &str, pseudonym: &str) -> Result<(), StoreError> {
        let mut batch = crate::engine::Batch::default();
        for kv in self.state.scan_prefix("audit/") {
            let (k, v) = kv?;
            if !holds(&v, email.as_bytes()) {
                continue;
            }
            let mut a: AuditEntry = decode(&v)?;
            for field in [&mut a.detail, &mut a.actor] {
                if let Some(t) = replace_ci(field, email, pseudonym) {
                    *field = t;
                }
            }
            batch.insert(k, encode(&a)?);
        }
        Ok(self.state.apply_batch(batch)?)
    }

    /// How many records in the store's trees still hold `email`, in any case (originals
    /// and attachment contents also decoded).
    fn records_holding(
        &self,
        email: &str,
        decoded: &dyn Fn(&[u8]) -> String,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        for tree in [&self.state, &self.raw, &self.blobs] {
            for kv in tree.iter() {
                let (k, v) = kv?;
                // An outbox item keeps its mail as numbers (JSON): look at the mail itself.
                let in_mail = k.starts_with(b"outbox/")
                    && decode::<OutboxItem>(&v).is_ok_and(|m| {
                        holds(&m.raw, email.as_bytes())
                            || m.files
                                .without_files
                                .is_some_and(|w| holds(&w, email.as_bytes()))
                    });
                let in_contents = !std::ptr::eq(tree, &self.state)
                    && holds(decoded(&v).as_bytes(), email.as_bytes());
                n += usize::from(
                    in_mail
                        || in_contents
                        || holds(&k, email.as_bytes())
                        || holds(&v, email.as_bytes()),
                );
            }
        }
        Ok(n)
    }
}

/// What the person wrote, found among the entries.
#[derive(Default)]
struct Theirs {
    entries: BTreeSet<u64>,
    inbound: BTreeSet<u64>,
    files: BTreeSet<String>,
    /// Tickets they asked for through a portal guest form.
    guest_tickets: BTreeSet<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_ignores_case_and_keeps_the_rest() {
        assert_eq!(
            replace_ci("Ask Rita@X.test or rita@x.test.", "rita@x.test", "p@e").as_deref(),
            Some("Ask p@e or p@e.")
        );
        assert_eq!(replace_ci("nothing here", "rita@x.test", "p"), None);
        assert!(holds(b"To: <RITA@x.TEST>", b"rita@x.test"));
        assert!(!holds(b"To: <rit@x.test>", b"rita@x.test"));
        // Only whole addresses: not inside a longer local part or domain.
        assert!(!holds(b"margarita@x.test", b"rita@x.test"));
        assert!(!holds(b"rita@x.test.org", b"rita@x.test"));
        assert!(!holds(b"a.rita@x.test", b"rita@x.test"));
        assert!(!holds("josérita@x.test".as_bytes(), b"rita@x.test"));
        for around in [
            "“rita@x.test”",
            "«rita@x.test»",
            "連絡先：rita@x.test。",
            "a\u{a0}rita@x.test",
            "—rita@x.test—",
        ] {
            assert!(holds(around.as_bytes(), b"rita@x.test"), "{around}");
        }
        assert!(!holds("rita@x.testé".as_bytes(), b"rita@x.test"));
        assert_eq!(
            cut_partial("Dave opened #3 Please call rita@x.t", "rita@x.test").as_deref(),
            Some("Dave opened #3 Please call [erased]")
        );
        assert_eq!(cut_partial("Dave opened #3 Call rita", "rita@x.test"), None);
        assert_eq!(cut_partial("margarita@x.t", "rita@x.test"), None);
        assert!(holds(b"write to rita@x.test.", b"rita@x.test"));
        assert!(holds(b"\"Rita\" <rita@x.test>,", b"rita@x.test"));
        assert_eq!(
            replace_ci("margarita@x.test and rita@x.test", "rita@x.test", "p").as_deref(),
            Some("margarita@x.test and p")
        );
    }
}
