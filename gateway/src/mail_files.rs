//! `postdesk import`: an mbox file or a Maildir folder exported from another desk or
//! mailbox, read into one organization through the same checks, spool and pipeline as
//! live mail. Messages go in the order of their Date (so a thread's first message comes
//! before its replies), keep that date on the timeline, and are marked imported: they
//! mail no one and ring no bell. Their contents are remembered (as an IMAP source's are),
//! so a second run takes nothing twice.

use crate::admission::{admit, date_of, Limits};
use crate::{GatewayError, Processor};
use postdesk_store::{
    Delivery, Envelope, MailboxOrigin, Org, Outcome, RefusedDelivery, Source, Store,
};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// Messages spooled and then threaded together: a batch is held in memory and costs a
/// flush of the store, so it is bounded in count and bytes.
const BATCH_MESSAGES: usize = 500;
const BATCH_BYTES: usize = 16 * 1024 * 1024;
/// The most of a message read to find its Date before the import is ordered.
const HEAD_BYTES: u64 = 64 * 1024;

/// Where one message is in what is imported.
#[derive(Debug, Clone)]
enum Place {
    /// Bytes `start..start + len` of the mbox file (its `From ` line excluded).
    Mbox { start: u64, len: u64 },
    /// A file of the Maildir.
    File(PathBuf),
}

/// A message read and admitted, waiting for its batch to be spooled.
struct ReadMail {
    envelope: Envelope,
    raw: Vec<u8>,
    message_id: Option<String>,
    /// The Message-IDs it answers.
    answers: Vec<String>,
}

/// Puts each message of a batch (in Date order) after those of the batch it answers,
/// first the ones that answer none, then their answers, and so on, Date order kept among
/// equals: the pipeline then rarely finds a message answering one still uncommitted in
/// its own batch of work, which it would have to commit alone first.
fn by_depth(batch: &mut Vec<ReadMail>) {
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (i, r) in batch.iter().enumerate() {
        if let Some(m) = &r.message_id {
            at.entry(m.as_str()).or_insert(i);
        }
    }
    let mut depth = vec![0usize; batch.len()];
    for i in 0..batch.len() {
        depth[i] = batch[i]
            .answers
            .iter()
            .filter_map(|a| at.get(a.as_str()))
            .filter(|&&j| j < i)
            .map(|&j| depth[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| depth[i]);
    let mut taken: Vec<Option<ReadMail>> = std::mem::take(batch).into_iter().map(Some).collect();
    batch.extend(order.into_iter().filter_map(|i| taken[i].take()));
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Messages found.
    pub found: usize,
    /// Messages that opened a ticket or joined one (held ones included: staff decide).
    pub imported: usize,
    /// Tickets they opened.
    pub opened: usize,
    /// Messages whose contents an earlier import (or this one) took already.
    pub already: usize,
    /// Messages the pipeline took for duplicates of mail it had (same Message-ID).
    pub duplicates: usize,
    /// Messages refused, by reason.
    pub refused: BTreeMap<String, usize>,
}

/// How far an import is: messages done of those found.
#[derive(Debug, Clone, Copy)]
pub struct ImportProgress {
    pub done: usize,
    pub total: usize,
}

/// The messages of `path`: an mbox file, or a Maildir folder (its `cur/` and `new/`, or
/// the folder itself when it has neither).
fn places(path: &Path) -> Result<Vec<Place>, GatewayError> {
    let cannot = |e: std::io::Error| GatewayError::Config(format!("{}: {e}", path.display()));
    if path.is_dir() {
        let mut files = Vec::new();
        let subs: Vec<PathBuf> = ["cur", "new"]
            .iter()
            .map(|s| path.join(s))
            .filter(|p| p.is_dir())
            .collect();
        let folders = if subs.is_empty() {
            vec![path.to_path_buf()]
        } else {
            subs
        };
        for folder in folders {
            for entry in std::fs::read_dir(&folder).map_err(cannot)? {
                let entry = entry.map_err(cannot)?;
                let name = entry.file_name();
                if entry.file_type().map_err(cannot)?.is_file()
                    && !name.to_string_lossy().starts_with('.')
                {
                    files.push(entry.path());
                }
            }
        }
        files.sort();
        return Ok(files.into_iter().map(Place::File).collect());
    }
    mbox_places(&mut BufReader::new(File::open(path).map_err(cannot)?)).map_err(cannot)
}

/// The messages of an mbox: each begins after a `From ` line at the file's start or after
/// an empty line, and ends before the empty line that precedes the next one.
fn mbox_places(file: &mut impl BufRead) -> std::io::Result<Vec<Place>> {
    let mut places = Vec::new();
    let mut line = Vec::new();
    let mut at = 0u64;
    let mut start: Option<u64> = None;
    // Where the message in hand ends if the next line starts another (before its blank).
    let mut end = 0u64;
    let mut after_blank = true;
    loop {
        line.clear();
        let n = file.read_until(b'\n', &mut line)? as u64;
        if n == 0 {
            break;
        }
        if after_blank && line.starts_with(b"From ") {
            if let Some(s) = start {
                places.push(Place::Mbox {
                    start: s,
                    len: end.saturating_sub(s),
                });
            }
            start = Some(at + n);
            end = at + n;
        } else {
            // A blank line may be the separator's: the message ends before it unless more
            // of it follows.
            let blank = line == b"\n" || line == b"\r\n";
            if !blank {
                end = at + n;
            }
            after_blank = blank;
            at += n;
            continue;
        }
        after_blank = false;
        at += n;
    }
    if let Some(s) = start {
        places.push(Place::Mbox {
            start: s,
            len: end.saturating_sub(s),
        });
    }
    Ok(places)
}

/// An mbox message's bytes as the sender wrote them: `>From ` lines (mboxrd quoting)
/// lose one `>`.
fn unquote_from_lines(bytes: Vec<u8>) -> Vec<u8> {
    if !bytes.windows(6).any(|w| w == b"\n>From" || w == b"\n>>Fro") && !bytes.starts_with(b">") {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if quotes > 0 && line[quotes..].starts_with(b"From ") {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Reads a message, or its first `limit` bytes.
fn read(mbox: Option<&mut File>, place: &Place, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match (place, mbox) {
        (Place::Mbox { start, len }, Some(f)) => {
            f.seek(SeekFrom::Start(*start))?;
            f.take((*len).min(limit)).read_to_end(&mut bytes)?;
            Ok(unquote_from_lines(bytes))
        }
        (Place::File(p), _) => {
            File::open(p)?.take(limit).read_to_end(&mut bytes)?;
            Ok(bytes)
        }
        (Place::Mbox { .. }, None) => Err(std::io::Error::other("no mbox file open")),
    }
}

/// What an import reads: the organization and its limits, the store and the pipeline.
pub struct MailFiles<'a> {
    pub store: &'a Store,
    pub processor: &'a mut Processor,
    pub max_message_size: usize,
    pub max_line_length: usize,
    /// The time imports are clamped to (a Date in the future is taken as now), and the
    /// time of mail without a readable Date.
    pub now: OffsetDateTime,
}

impl MailFiles<'_> {
    /// Imports `path` into organization `slug`; `progress` is told after each batch.
    pub fn import(
        &mut self,
        slug: &str,
        path: &Path,
        mut progress: impl FnMut(ImportProgress),
    ) -> Result<ImportReport, GatewayError> {
        let org = self
            .store
            .org(slug)?
            .ok_or_else(|| GatewayError::Config(format!("no organization {slug:?}")))?;
        if org.deactivated_at.is_some() {
            return Err(GatewayError::Config(format!(
                "organization {slug} is deactivated: reactivate it first"
            )));
        }
        let cannot = |e: std::io::Error| GatewayError::Config(format!("{}: {e}", path.display()));
        let found = places(path)?;
        let mut mbox = if path.is_dir() {
            None
        } else {
            Some(File::open(path).map_err(cannot)?)
        };
        let limits = Limits {
            max_message_size: self.max_message_size,
            max_line_length: self.max_line_length,
        };
        // Ordered by Date, the file's order kept among equal ones: a thread's replies come
        // after what they answer whatever order the files came in.
        let mut order = Vec::with_capacity(found.len());
        for (i, place) in found.iter().enumerate() {
            let head = read(mbox.as_mut(), place, HEAD_BYTES).map_err(cannot)?;
            let date = date_of(&head);
            order.push((date.map_or(i64::MAX, |d| d.unix_timestamp()), i));
        }
        order.sort();
        let source = format!("import/{}", org.slug);
        let mut report = ImportReport {
            found: found.len(),
            ..ImportReport::default()
        };
        let mut batch: Vec<ReadMail> = Vec::new();
        let mut bytes = 0;
        for (n, (_, i)) in order.iter().enumerate() {
            let place = &found[*i];
            let limit = self.max_message_size as u64 + 1;
            let raw = read(mbox.as_mut(), place, limit).map_err(cannot)?;
            if self.store.mailbox_has_imported(&source, &raw)? {
                report.already += 1;
            } else {
                bytes += raw.len();
                batch.push(self.admitted(&org, &source, raw, limits, *i));
            }
            if batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES || n + 1 == order.len() {
                by_depth(&mut batch);
                self.commit(&org, &batch, &mut report)?;
                batch.clear();
                bytes = 0;
                progress(ImportProgress {
                    done: n + 1,
                    total: order.len(),
                });
            }
        }
        Ok(report)
    }

    /// `raw`, message `index` of the file, as the checks admit it.
    fn admitted(
        &self,
        org: &Org,
        source: &str,
        raw: Vec<u8>,
        limits: Limits,
        index: usize,
    ) -> ReadMail {
        let a = admit(self.store, org, &raw, None, limits);
        let (deliveries, refused) = match a.refusal {
            None => (
                vec![Delivery {
                    org: org.slug.clone(),
                    address: a.address,
                }],
                vec![],
            ),
            Some(reason) => (
                vec![],
                vec![RefusedDelivery {
                    org: org.slug.clone(),
                    address: a.address,
                    reason,
                }],
            ),
        };
        let envelope = Envelope {
            source: Source::Import,
            peer: "import".into(),
            helo: String::new(),
            mail_from: a.mail_from,
            deliveries,
            refused,
            received_at: a.date.map_or(self.now, |d| d.min(self.now)),
            mailbox: Some(MailboxOrigin {
                source: source.to_string(),
                uidvalidity: 0,
                uid: u32::try_from(index + 1).unwrap_or(u32::MAX),
                follow_up: None,
            }),
        };
        ReadMail {
            envelope,
            raw,
            message_id: a.message_id,
            answers: a.answers,
        }
    }

    /// Spools a batch (its contents remembered with it), threads it, and counts what the
    /// pipeline decided for each.
    fn commit(
        &mut self,
        org: &Org,
        batch: &[ReadMail],
        report: &mut ImportReport,
    ) -> Result<(), GatewayError> {
        if batch.is_empty() {
            return Ok(());
        }
        let items: Vec<(&Envelope, &[u8])> = batch
            .iter()
            .map(|r| (&r.envelope, r.raw.as_slice()))
            .collect();
        let ids = self.store.spool_batch(&items)?;
        self.processor.process_pending()?;
        for id in ids {
            match self.store.decision(id, &org.slug)?.map(|d| d.outcome) {
                Some(Outcome::Accepted { new_ticket, .. }) => {
                    report.imported += 1;
                    report.opened += usize::from(new_ticket);
                }
                Some(Outcome::Duplicate { .. }) => report.duplicates += 1,
                Some(Outcome::Refused { reason }) => {
                    *report.refused.entry(short_reason(&reason)).or_default() += 1
                }
                None => {
                    *report
                        .refused
                        .entry("not decided (given up on)".into())
                        .or_default() += 1
                }
            }
        }
        Ok(())
    }
}

/// A refusal's reason without what names one message (an address, a number, a note in
/// parentheses), so alike refusals count together.
fn short_reason(reason: &str) -> String {
    let reason = reason[..reason.find('(').unwrap_or(reason.len())].trim();
    let mut out = String::with_capacity(reason.len());
    let mut in_address = false;
    for c in reason.chars() {
        match c {
            '<' => {
                in_address = true;
                out.push_str("<…>");
            }
            '>' if in_address => in_address = false,
            _ if in_address => {}
            '0'..='9' => {
                if !out.ends_with('N') {
                    out.push('N');
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbox(text: &str) -> Vec<(u64, u64)> {
        mbox_places(&mut text.as_bytes())
            .expect("read")
            .into_iter()
            .map(|p| match p {
                Place::Mbox { start, len } => (start, len),
                Place::File(_) => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn an_mbox_splits_at_from_lines_after_blank_ones() {
        let text = "From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\nFrom here on\n\nFrom b@x Tue Jan  2 00:00:00 2024\nSubject: two\n\nsecond\n";
        let found = mbox(text);
        assert_eq!(found.len(), 2);
        let (s, l) = found[0];
        assert_eq!(
            &text[s as usize..(s + l) as usize],
            "Subject: one\n\nbody\nFrom here on\n"
        );
        let (s, l) = found[1];
        assert_eq!(
            &text[s as usize..(s + l) as usize],
            "Subject: two\n\nsecond\n"
        );
        assert!(mbox("").is_empty());
    }

    #[test]
    fn a_batch_puts_answers_after_what_they_answer() {
        let read = |id: &str, answers: &[&str]| ReadMail {
            envelope: Envelope {
                source: Source::Import,
                peer: String::new(),
                helo: String::new(),
                mail_from: String::new(),
                deliveries: vec![],
                refused: vec![],
                received_at: OffsetDateTime::UNIX_EPOCH,
                mailbox: None,
            },
            raw: id.as_bytes().to_vec(),
            message_id: Some(id.to_string()),
            answers: answers.iter().map(|a| a.to_string()).collect(),
        };
        let mut batch = vec![
            read("a", &[]),
            read("a1", &["a"]),
            read("a2", &["a", "a1"]),
            read("b", &[]),
            read("b1", &["b"]),
            read("c", &["elsewhere"]),
        ];
        by_depth(&mut batch);
        let ids: Vec<_> = batch
            .iter()
            .map(|r| r.message_id.clone().unwrap_or_default())
            .collect();
        assert_eq!(ids, ["a", "b", "c", "a1", "b1", "a2"]);
    }

    #[test]
    fn quoted_from_lines_lose_one_quote() {
        let raw = b"Subject: x\n\n>From the start\n>>From deeper\n> From not\n".to_vec();
        assert_eq!(
            unquote_from_lines(raw),
            b"Subject: x\n\nFrom the start\n>From deeper\n> From not\n".to_vec()
        );
    }

    #[test]
    fn reasons_count_together_without_their_details() {
        assert_eq!(
            short_reason("Sender domain x.test is not allowed to write to a@b (x)"),
            "Sender domain x.test is not allowed to write to a@b"
        );
        assert_eq!(short_reason("<e@x> is blocked"), "<…> is blocked");
        assert_eq!(
            short_reason("message of 123456 bytes exceeds the limit of 100 bytes"),
            "message of N bytes exceeds the limit of N bytes"
        );
    }
}
