//! `postdesk import`: an mbox file or a Maildir folder exported from another desk or
//! mailbox, read into one organization through the same checks, spool and pipeline as
//! live mail. Messages go in the order of their Date (so a thread's first message comes
//! before its replies), keep that date on the timeline, and are marked imported: they
//! mail no one and ring no bell. Their contents are remembered (as an IMAP source's are),
//! so a second run takes nothing twice.

use crate::admission::{admit, thread_head, Limits, ThreadHead};
use crate::{GatewayError, Processor};
use postdesk_store::{
    import_source, Delivery, Envelope, MailboxOrigin, Org, Outcome, RefusedDelivery, Source, Store,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
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

/// The order messages are imported in: by Date, but never before a message of the
/// import they answer (a reply dated a minute before its question, by a skewed clock,
/// waits for it); messages answering each other in a circle come after the rest, by
/// Date. O(n log n).
fn import_order(heads: &[ThreadHead]) -> Vec<usize> {
    let n = heads.len();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, h) in heads.iter().enumerate() {
        if let Some(id) = &h.message_id {
            by_id.entry(id.as_str()).or_insert(i);
        }
    }
    let mut waiting = vec![0usize; n];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut parents: Vec<Vec<usize>> = Vec::with_capacity(n);
    for (i, h) in heads.iter().enumerate() {
        let mut mine: Vec<usize> = h
            .answers
            .iter()
            .filter_map(|a| by_id.get(a.as_str()).copied())
            .filter(|&p| p != i)
            .collect();
        mine.sort_unstable();
        mine.dedup();
        waiting[i] = mine.len();
        for &p in &mine {
            children[p].push(i);
        }
        parents.push(mine);
    }
    let mut by_date: Vec<usize> = (0..n).collect();
    by_date.sort_by_key(|&i| (heads[i].date, i));
    let mut next = by_date.into_iter();
    let mut ready: BinaryHeap<Reverse<(i64, usize)>> = (0..n)
        .filter(|&i| waiting[i] == 0)
        .map(|i| Reverse((heads[i].date, i)))
        .collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    loop {
        while let Some(Reverse((_, i))) = ready.pop() {
            if std::mem::replace(&mut done[i], true) {
                continue;
            }
            order.push(i);
            for &c in &children[i] {
                waiting[c] = waiting[c].saturating_sub(1);
                if waiting[c] == 0 {
                    ready.push(Reverse((heads[c].date, c)));
                }
            }
        }
        // What is left waits on a circle: from the earliest of it, up through what it
        // waits for until a message repeats (one of the circle, not a reply to it), which
        // goes next. The walk is bounded.
        let Some(mut i) = next.by_ref().find(|&i| !done[i]) else {
            break;
        };
        let mut seen = std::collections::HashSet::new();
        while seen.insert(i) && seen.len() <= CIRCLE_WALK {
            match parents[i].iter().find(|&&p| !done[p]) {
                Some(&p) => i = p,
                None => break,
            }
        }
        ready.push(Reverse((heads[i].date, i)));
    }
    order
}

/// The most steps a walk looking for a circle takes (hostile References stay cheap).
const CIRCLE_WALK: usize = 1000;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Messages found.
    pub found: usize,
    /// Entries of a Maildir not read (links, folders, hidden files).
    pub skipped: usize,
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

/// The messages of `path` (an mbox file, or a Maildir folder: its `cur/` and `new/`),
/// and how many entries there were not read (links, folders, hidden files).
fn places(path: &Path) -> Result<(Vec<Place>, usize), GatewayError> {
    let cannot = |e: std::io::Error| GatewayError::Config(format!("{}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if meta.is_dir() {
        let folders: Vec<PathBuf> = ["cur", "new"]
            .iter()
            .map(|s| path.join(s))
            .filter(|p| p.is_dir())
            .collect();
        if folders.is_empty() {
            return Err(GatewayError::Config(format!(
                "{} is not a Maildir (it has no cur/ or new/ folder)",
                path.display()
            )));
        }
        let (mut files, mut skipped) = (Vec::new(), 0);
        for folder in folders {
            for entry in std::fs::read_dir(&folder).map_err(cannot)? {
                let entry = entry.map_err(cannot)?;
                // Not followed: a link may point anywhere (a device, another mailbox).
                if entry.file_type().map_err(cannot)?.is_file()
                    && !entry.file_name().to_string_lossy().starts_with('.')
                {
                    files.push(entry.path());
                } else {
                    skipped += 1;
                }
            }
        }
        files.sort();
        return Ok((files.into_iter().map(Place::File).collect(), skipped));
    }
    if !meta.is_file() {
        return Err(GatewayError::Config(format!(
            "{} is neither an mbox file nor a Maildir folder",
            path.display()
        )));
    }
    let found =
        mbox_places(&mut BufReader::new(File::open(path).map_err(cannot)?)).map_err(cannot)?;
    Ok((found, 0))
}

/// The bytes of a line kept to tell what it is (a separator, a blank line): a line of any
/// length costs no more than this.
const LINE_HEAD: usize = 1024;

/// Whether a line begins a message in an mbox: `From `, then the sender (an address,
/// `-` as Thunderbird writes, `MAILER-DAEMON`) or a date (which has digits), so a body
/// line "From here on" after an empty line is not taken for one.
fn is_separator(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let mut words = rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let Some(sender) = words.next() else {
        return false;
    };
    sender.contains(&b'@')
        || sender == b"-"
        || sender.eq_ignore_ascii_case(b"MAILER-DAEMON")
        || words.any(|w| w.iter().any(u8::is_ascii_digit))
}

/// The messages of an mbox: each begins after a separator line at the file's start or
/// after an empty line, and ends before the empty line that precedes the next one. Read
/// in the reader's chunks: memory stays the same whatever a line's length.
fn mbox_places(file: &mut impl BufRead) -> std::io::Result<Vec<Place>> {
    let mut places = Vec::new();
    let mut head: Vec<u8> = Vec::with_capacity(LINE_HEAD);
    let (mut at, mut line_start) = (0u64, 0u64);
    let mut start: Option<u64> = None;
    // Where the message in hand ends if the next line starts another (before its blank).
    let mut end = 0u64;
    let mut after_blank = true;
    let mut line = |head: &[u8], to: u64, places: &mut Vec<Place>| {
        let blank = head == b"\n" || head == b"\r\n";
        if after_blank && is_separator(head) {
            if let Some(s) = start {
                places.push(Place::Mbox {
                    start: s,
                    len: end.saturating_sub(s),
                });
            }
            start = Some(to);
            end = to;
            after_blank = false;
        } else {
            if !blank {
                end = to;
            }
            after_blank = blank;
        }
    };
    loop {
        let buf = file.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        let mut i = 0;
        while i < n {
            let (piece, ends) = match buf[i..].iter().position(|&b| b == b'\n') {
                Some(j) => (&buf[i..=i + j], true),
                None => (&buf[i..], false),
            };
            let room = LINE_HEAD.saturating_sub(head.len());
            head.extend_from_slice(&piece[..piece.len().min(room)]);
            i += piece.len();
            if ends {
                let to = at + i as u64;
                line(&head, to, &mut places);
                head.clear();
                line_start = to;
            }
        }
        file.consume(n);
        at += n as u64;
    }
    if line_start < at {
        line(&head, at, &mut places);
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
        let (found, skipped) = places(path)?;
        if found.is_empty() {
            return Err(GatewayError::Config(format!(
                "no messages in {} (an mbox begins each with a \"From sender date\" line; a \
                 Maildir keeps them in cur/ and new/)",
                path.display()
            )));
        }
        let mut mbox = if path.is_dir() {
            None
        } else {
            Some(File::open(path).map_err(cannot)?)
        };
        let limits = Limits {
            max_message_size: self.max_message_size,
            max_line_length: self.max_line_length,
        };
        let mut heads = Vec::with_capacity(found.len());
        for place in &found {
            let head = read(mbox.as_mut(), place, HEAD_BYTES).map_err(cannot)?;
            heads.push(thread_head(&head));
        }
        let order = import_order(&heads);
        drop(heads);
        let source = import_source(&org.slug);
        let mut report = ImportReport {
            found: found.len(),
            skipped,
            ..ImportReport::default()
        };
        let mut batch: Vec<ReadMail> = Vec::new();
        let mut bytes = 0;
        for (n, &i) in order.iter().enumerate() {
            let place = &found[i];
            let limit = self.max_message_size as u64 + 1;
            let raw = read(mbox.as_mut(), place, limit).map_err(cannot)?;
            if self.store.mailbox_has_imported(&source, &raw)? {
                report.already += 1;
            } else {
                bytes += raw.len();
                batch.push(self.admitted(&org, &source, raw, limits, i));
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
        let mut a = admit(self.store, org, &raw, None, limits);
        // An archive read again must not bring back a person erased since: not as its
        // sender, nor on a CC list or as someone to answer.
        if a.refusal.is_none()
            && a.named
                .iter()
                .any(|n| matches!(self.store.erased_as(n), Ok(Some(_))))
        {
            a.refusal = Some("it names a person who was erased".into());
        }
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
    let reason = match reason.trim_end().strip_suffix(')') {
        Some(_) => reason[..reason.rfind(" (").unwrap_or(reason.len())].trim(),
        None => reason.trim(),
    };
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
        let text = "From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n\nFrom here on\n\nFrom b@x Tue Jan  2 00:00:00 2024\nSubject: two\n\nsecond\n";
        let found = mbox(text);
        assert_eq!(found.len(), 2);
        let (s, l) = found[0];
        assert_eq!(
            &text[s as usize..(s + l) as usize],
            "Subject: one\n\nbody\n\nFrom here on\n"
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
    fn a_long_line_costs_nothing_and_a_file_without_separators_has_no_messages() {
        let long = format!(
            "From a@x Mon Jan  1 00:00:00 2024\nSubject: x\n\n{}\n",
            "y".repeat(1 << 20)
        );
        let found = mbox(&long);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].1 as usize,
            long.len() - long.find('\n').unwrap() - 1
        );
        assert!(mbox("Subject: just one message\n\nbody\n").is_empty());
        // A separator without a date (some tools write none) still separates.
        assert_eq!(
            mbox("From bob@x.test\nSubject: a\n\nx\n\nFrom bob@x.test\nSubject: b\n\ny\n").len(),
            2
        );
    }

    #[test]
    fn replies_wait_for_what_they_answer_whatever_their_date() {
        let head = |date: i64, id: &str, answers: &[&str]| ThreadHead {
            date,
            message_id: Some(id.to_string()),
            answers: answers.iter().map(|a| a.to_string()).collect(),
        };
        let heads = [
            head(5, "reply", &["question"]),
            head(9, "question", &[]),
            head(1, "other", &[]),
            head(3, "a", &["b"]),
            head(4, "b", &["a"]),
        ];
        // "reply" (dated 5) waits for "question" (dated 9); the circle a/b comes after the
        // rest, by date.
        assert_eq!(import_order(&heads), [2, 1, 0, 3, 4]);
        // A reply to a member of a circle (dated before it) still comes after that member.
        let heads = [
            head(3, "aa", &["bb"]),
            head(4, "bb", &["aa"]),
            head(1, "cc", &["aa"]),
        ];
        let order = import_order(&heads);
        let at = |i| order.iter().position(|&o| o == i);
        assert!(at(2) > at(0), "{order:?}");
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
            short_reason("Sender domain (no From address) is not allowed to write to a@b"),
            "Sender domain (no From address) is not allowed to write to a@b"
        );
        assert_eq!(
            short_reason("message of 123456 bytes exceeds the limit of 100 bytes"),
            "message of N bytes exceeds the limit of N bytes"
        );
    }
}
