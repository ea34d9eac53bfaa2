//! Files in outbound mail, over a real store and the folder transport: a staff answer carries
//! its files to the requester and every CC (the same bytes, the body stored once), alerts
//! carry an end user's files to staff only, held mail's files go nowhere, files over the
//! size cap are named instead (and the author's bell says so), and a mail whose stored body
//! is gone still goes, without its files.

use mail_parser::{MessageParser, MimeHeaders};
use postdesk_notifier::{FolderTransport, Notifier, NotifierConfig, Transport};
use postdesk_store::{
    AttachmentRef, DeliveryCommit, EventKind, Org, OutboxItem, Role, Staff, Store, TicketTarget,
    TicketType, Visibility,
};
use std::path::PathBuf;
use std::time::Duration;

struct Desk {
    store: Store,
    dir: PathBuf,
    inbound: u64,
}

impl Desk {
    fn new(name: &str) -> Desk {
        let dir = std::env::temp_dir().join(format!("postdesk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = postdesk_store::testing::open(&dir.join("data")).expect("store");
        let now = time::OffsetDateTime::now_utc();
        store
            .add_org(&Org::new(
                "acme",
                "Acme",
                vec!["acme@acme.test".into()],
                now,
            ))
            .expect("org");
        store
            .add_staff(&Staff::new("alex@acme.test", "Alex Doe", Role::Admin, now))
            .expect("staff");
        Desk {
            store,
            dir,
            inbound: 0,
        }
    }

    fn file(&self, name: &str, content_type: &str, bytes: &[u8]) -> AttachmentRef {
        AttachmentRef {
            name: name.into(),
            content_type: content_type.into(),
            size: bytes.len() as u64,
            sha256: self.store.put_blob(bytes).expect("blob"),
        }
    }

    /// Commits a mail as the pipeline would; returns the ticket's number.
    fn deliver(&mut self, mail: Mail) -> u64 {
        self.inbound += 1;
        let d = self
            .store
            .commit_delivery(&DeliveryCommit {
                inbound: self.inbound,
                org: "acme".into(),
                message_id: Some(format!("m{}@client.test", self.inbound)),
                from: mail.from.into(),
                subject: "Printer".into(),
                target: match mail.ticket {
                    Some(n) => TicketTarget::Existing(n),
                    None => TicketTarget::New {
                        ticket_type: TicketType::Question,
                        summary: "Printer".into(),
                        requester: mail.from.into(),
                        automatic: false,
                    },
                },
                kind: if mail.ticket.is_some() {
                    EventKind::Reply
                } else {
                    EventKind::Created
                },
                by_staff: mail.by_staff,
                text: "See the files.".into(),
                attachments: mail.files,
                automatic: false,
                participants: vec![],
                cc: mail.cc.iter().map(|c| c.to_string()).collect(),
                rule: "test".into(),
                notes: vec![],
                visibility: mail.visibility,
                changes: vec![],
                last_delivery: false,
                held: mail.held,
                suspected_spoofing: false,
                imported: false,
                at: time::OffsetDateTime::now_utc(),
            })
            .expect("committed");
        match d.outcome {
            postdesk_store::Outcome::Accepted { ticket, .. } => ticket,
            other => panic!("not accepted: {other:?}"),
        }
    }

    fn outbox_dir(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    fn run(&self, transport: Transport, max_message_bytes: u64) {
        let config = NotifierConfig {
            max_message_bytes,
            public_url: "https://desk.acme.test".into(),
            retry_base: Duration::ZERO,
            ..NotifierConfig::default()
        };
        let notifier = Notifier::new(self.store.clone(), transport, config);
        // Relay sends run on the caller's runtime, from the notifier's own thread: a
        // multi-thread runtime drives their I/O (as the server's does).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        notifier.run_once(rt.handle()).expect("pass");
    }

    fn run_to_folder(&self, max_message_bytes: u64) {
        let folder = FolderTransport::new(self.outbox_dir()).expect("folder");
        self.run(Transport::Folder(folder), max_message_bytes);
    }

    fn item(&self, event_kind: &str, recipient: &str) -> OutboxItem {
        self.store
            .outbox(1000)
            .expect("outbox")
            .into_iter()
            .find(|i| i.kind == event_kind && i.recipient == recipient)
            .unwrap_or_else(|| panic!("no {event_kind} to {recipient}"))
    }

    /// The sent mail of `item`, as written to the folder.
    fn sent(&self, item: &OutboxItem) -> Vec<u8> {
        let folder = FolderTransport::new(self.outbox_dir()).expect("folder");
        std::fs::read(folder.path_of(&item.key)).expect("sent mail")
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Mail {
    from: &'static str,
    ticket: Option<u64>,
    by_staff: bool,
    visibility: Visibility,
    held: bool,
    cc: Vec<&'static str>,
    files: Vec<AttachmentRef>,
}

impl Mail {
    fn from(from: &'static str, ticket: Option<u64>, files: Vec<AttachmentRef>) -> Mail {
        Mail {
            from,
            ticket,
            by_staff: false,
            visibility: Visibility::Public,
            held: false,
            cc: vec![],
            files,
        }
    }
}

/// (name, content type, bytes) of each attachment of a raw mail.
fn attachments(raw: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let msg = MessageParser::new().parse(raw).expect("parses");
    msg.attachments()
        .map(|a| {
            let ct = a
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                .unwrap_or_default();
            (
                a.attachment_name().unwrap_or("").to_string(),
                ct,
                a.contents().to_vec(),
            )
        })
        .collect()
}

fn text_of(raw: &[u8]) -> String {
    let msg = MessageParser::new().parse(raw).expect("parses");
    msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
}

fn header_block(raw: &[u8]) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Bytes no text transfer encoding would keep as they are: bare LF, CR, NUL, 8-bit.
fn awkward_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| match i % 7 {
            0 => b'\n',
            1 => b'\r',
            2 => 0,
            3 => 0xff,
            _ => b'a' + (i % 26) as u8,
        })
        .collect()
}

#[test]
fn a_staff_answer_carries_its_files_to_the_requester_and_every_cc() {
    let mut desk = Desk::new("files-answer");
    let mut opening = Mail::from("carol@customer.test", None, vec![]);
    opening.cc = vec!["dave@customer.test"];
    let n = desk.deliver(opening);
    let png = awkward_bytes(150_000);
    let text = b"line one\nline two\r\n.\r\nFrom the start\n".to_vec();
    let files = vec![
        desk.file("screen shot.png", "image/png", &png),
        desk.file(
            "Résumé \"final\"\r\nBcc: evil@x.test.txt",
            "text/plain\r\nX-Evil: 1",
            &text,
        ),
    ];
    let mut answer = Mail::from("alex@acme.test", Some(n), files);
    answer.by_staff = true;
    desk.deliver(answer);
    desk.run_to_folder(25 * 1024 * 1024);

    let carol = desk.item("staff_answer", "carol@customer.test");
    let dave = desk.item("staff_answer", "dave@customer.test");
    assert!(carol.files.body.is_some(), "{:?}", carol.files);
    assert_eq!(
        carol.files.body, dave.files.body,
        "one stored body for every recipient"
    );
    assert!(
        carol.raw.len() < 4096,
        "the outbox holds the header, not the files"
    );
    assert_eq!(carol.files.attached.len(), 2);
    assert!(carol.files.left_out.is_empty());
    for item in [&carol, &dave] {
        let raw = desk.sent(item);
        let got = attachments(&raw);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            (got[0].0.as_str(), got[0].1.as_str()),
            ("screen shot.png", "image/png")
        );
        assert_eq!(got[0].2, png, "the same bytes");
        assert_eq!(got[1].2, text, "a text file's line endings unchanged");
        assert_eq!(
            got[1].1, "application/octet-stream",
            "a hostile type is replaced"
        );
        assert_eq!(got[1].0, "Résumé \"final\"  Bcc: evil@x.test.txt");
        let head = header_block(&raw);
        assert!(
            !raw.split(|b| *b == b'\n')
                .any(|l| l.starts_with(b"Bcc:") || l.starts_with(b"X-Evil:")),
            "no header injected"
        );
        assert!(head.contains("multipart/mixed"), "{head}");
        assert!(raw.split(|b| *b == b'\n').all(|l| l.len() <= 998));
        assert!(text_of(&raw).contains("See the files."));
        // The body the outbox names is exactly what follows the stored header.
        assert!(raw.starts_with(&item.raw));
    }
    assert!(
        desk.store
            .outbox(100)
            .expect("outbox")
            .iter()
            .filter(|i| i.recipient == "alex@acme.test")
            .all(|i| i.kind != "staff_answer"),
        "never to the author"
    );
}

#[test]
fn end_users_files_reach_staff_only_and_held_files_nobody() {
    let mut desk = Desk::new("files-alerts");
    let log = desk.file("log.txt", "text/plain", b"error 42\n");
    let mut opening = Mail::from("carol@customer.test", None, vec![log.clone()]);
    opening.cc = vec!["dave@customer.test"];
    let n = desk.deliver(opening);
    desk.run_to_folder(25 * 1024 * 1024);
    let alert = desk.item("new_ticket_alert", "alex@acme.test");
    assert_eq!(attachments(&desk.sent(&alert))[0].2, b"error 42\n");
    let ack = desk.item("acknowledgement", "carol@customer.test");
    assert!(ack.files.is_empty() && attachments(&desk.sent(&ack)).is_empty());

    let shot = desk.file("shot.png", "image/png", b"\x89PNG secret");
    desk.deliver(Mail::from("carol@customer.test", Some(n), vec![shot]));
    let mut held = Mail::from("mallory@elsewhere.test", Some(n), vec![log]);
    held.visibility = Visibility::Internal;
    held.held = true;
    desk.deliver(held);
    desk.run_to_folder(25 * 1024 * 1024);
    let mails = desk.store.outbox(100).expect("outbox");
    let reply_alert = desk.item("reply_alert", "alex@acme.test");
    assert_eq!(
        attachments(&desk.sent(&reply_alert))[0].2,
        b"\x89PNG secret"
    );
    assert!(
        mails
            .iter()
            .filter(|i| i.recipient != "alex@acme.test")
            .all(|i| i.files.is_empty()),
        "an end user's files go to no other end user: {mails:?}"
    );
    let held_alert = desk.item("held_alert", "alex@acme.test");
    assert!(held_alert.files.is_empty());
    assert!(attachments(&desk.sent(&held_alert)).is_empty());
}

#[test]
fn files_over_the_cap_are_named_and_the_author_told() {
    let mut desk = Desk::new("files-cap");
    let n = desk.deliver(Mail::from("carol@customer.test", None, vec![]));
    let small = desk.file("small.txt", "text/plain", &[b'x'; 10_000]);
    let big = desk.file("big.bin", "application/octet-stream", &vec![7u8; 300_000]);
    let mut answer = Mail::from("alex@acme.test", Some(n), vec![big, small.clone()]);
    answer.by_staff = true;
    desk.deliver(answer);
    desk.run_to_folder(200_000);
    let item = desk.item("staff_answer", "carol@customer.test");
    assert_eq!(item.files.attached, [small]);
    assert_eq!(item.files.left_out.len(), 1);
    let raw = desk.sent(&item);
    assert!(raw.len() <= 200_000, "{}", raw.len());
    let got = attachments(&raw);
    assert_eq!(
        got.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        ["small.txt"]
    );
    let text = text_of(&raw);
    assert!(
        text.contains("Not attached, too large to send by mail: big.bin (300 KB). Reply to this mail if you need them."),
        "{text}"
    );
    let (bell, _) = desk.store.bell("alex@acme.test", 10).expect("bell");
    assert!(bell.iter().any(|b| b.text.contains("big.bin")), "{bell:?}");

    // Nothing fits at all: the text alone goes, naming both.
    let tiny = desk.file("a.pdf", "application/pdf", &[1u8; 5_000]);
    let mut answer = Mail::from("alex@acme.test", Some(n), vec![tiny]);
    answer.by_staff = true;
    desk.deliver(answer);
    desk.run_to_folder(10_000);
    let items = desk.store.outbox(100).expect("outbox");
    let last = items
        .iter()
        .filter(|i| i.kind == "staff_answer")
        .max_by_key(|i| i.event)
        .expect("answer");
    assert!(last.files.body.is_none() && last.files.attached.is_empty());
    let raw = desk.sent(last);
    assert!(attachments(&raw).is_empty());
    assert!(text_of(&raw).contains("a.pdf (5 KB)"));
}

#[test]
fn a_mail_whose_files_are_gone_still_goes_without_them() {
    let mut desk = Desk::new("files-gone");
    let n = desk.deliver(Mail::from("carol@customer.test", None, vec![]));
    let big = desk.file("big.bin", "application/octet-stream", &vec![3u8; 100_000]);
    let mut answer = Mail::from("alex@acme.test", Some(n), vec![big]);
    answer.by_staff = true;
    desk.deliver(answer);
    // Planned, but the outbox folder cannot be written (it is a file): the mail waits.
    let blocked = desk.dir.join("blocked");
    let folder = FolderTransport::new(blocked.clone()).expect("folder");
    std::fs::remove_dir(&blocked).expect("rmdir");
    std::fs::write(&blocked, b"not a folder").expect("file");
    desk.run(Transport::Folder(folder), 25 * 1024 * 1024);
    let item = desk.item("staff_answer", "carol@customer.test");
    assert!(item.last_error.is_some(), "{item:?}");
    let body = item.files.body.clone().expect("carries files");
    lose_blob(&desk, &body);
    desk.run_to_folder(25 * 1024 * 1024);
    let item = desk.item("staff_answer", "carol@customer.test");
    assert!(matches!(
        item.status,
        postdesk_store::OutboxStatus::Sent { .. }
    ));
    assert!(item.files.body.is_none() && item.files.left_out.len() == 1);
    let raw = desk.sent(&item);
    assert!(attachments(&raw).is_empty());
    assert!(text_of(&raw).contains("big.bin (100 KB)"));
}

/// Loses a stored body as a disk might: its file (sled keeps bodies over 64 KiB as files),
/// or its row (PostgreSQL).
fn lose_blob(desk: &Desk, sha256: &str) {
    let path = desk
        .dir
        .join("data")
        .join("files")
        .join("blobs")
        .join(sha256);
    if desk.store.is_shared() {
        assert!(postdesk_store::testing::lose_blob(&desk.store, sha256).expect("lose"));
    } else {
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
