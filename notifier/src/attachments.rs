//! Files relayed with outbound mail: which of an event's attachments fit in one mail, their
//! MIME parts (names and types come from hostile input and are made safe for a header), and
//! the body holding them, built once per event and stored as a blob that every recipient's
//! mail of the event references.

use crate::NotifierError;
use mail_builder::encoders::base64::base64_encode_mime;
use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::{BodyPart, MimePart};
use postdesk_store::{AttachmentRef, BellItem, Event, OutboxItem, Store};
use sha2::{Digest, Sha256};

/// Room kept in a mail for its header and the MIME headers of its text parts.
const HEADROOM: u64 = 16 * 1024;
/// The MIME headers of one file's part at most (its name, encoded, is in two of them).
const PART_HEADERS: u64 = 2 * 1024;
/// Longest file name put in a header, in characters (the extension is kept).
const MAX_NAME_CHARS: usize = 100;

/// Bytes `len` bytes take in a mail as base64 in lines of 76 with CRLF. A text part is
/// never larger: mail-builder picks quoted-printable only when it is smaller.
fn base64_size(len: u64) -> u64 {
    let b64 = len.div_ceil(3) * 4;
    b64 + b64.div_ceil(76) * 2
}

/// Bytes a file takes in a mail, its part's headers included.
pub(crate) fn file_size_in_mail(size: u64) -> u64 {
    base64_size(size) + PART_HEADERS
}

/// An upper bound of the size of a mail with this text, HTML and these files.
pub(crate) fn mail_size(text: &str, html: &str, files: &[AttachmentRef]) -> u64 {
    HEADROOM
        + base64_size(text.len() as u64)
        + base64_size(html.len() as u64)
        + files.iter().map(|f| file_size_in_mail(f.size)).sum::<u64>()
}

/// Which of `files` one mail of at most `max_bytes` can carry besides its text of
/// `text_size` bytes: first fit, in the event's order.
pub(crate) fn fit(files: &[AttachmentRef], max_bytes: u64, text_size: u64) -> Vec<bool> {
    let mut room = max_bytes.saturating_sub(HEADROOM + text_size);
    files
        .iter()
        .map(|f| {
            let need = file_size_in_mail(f.size);
            let fits = need <= room;
            if fits {
                room -= need;
            }
            fits
        })
        .collect()
}

/// The bytes `text` and `html` take in a mail (for [`fit`]).
pub(crate) fn text_size(text: &str, html: &str) -> u64 {
    base64_size(text.len() as u64) + base64_size(html.len() as u64)
}

/// The files of one event's mails of one kind, worked out once for all their recipients.
pub(crate) struct EventFiles {
    pub kind: &'static str,
    /// The text and HTML naming every file as left out: the mail without files.
    pub without: (String, String),
    /// The body with the files that fit, and the SHA-256 of the blob storing it; `None`
    /// when none fits.
    pub body: Option<(FilesBody, String)>,
    pub attached: Vec<AttachmentRef>,
    pub left_out: Vec<AttachmentRef>,
}

/// What [`prepare`] needs to know of the mail.
pub(crate) struct Limits<'a> {
    /// Largest mail, files included.
    pub max_bytes: u64,
    /// Where the files left out are (e.g. "Reply to this mail if you need them.").
    pub hint: &'a str,
    /// Keyed tag of the MIME boundaries (see `render::boundary_tag`).
    pub tag: &'a str,
}

/// Chooses the files that fit, renders the text (naming those left out) with `texts`,
/// builds the body with the files and stores it; also renders the text of the mail
/// without files. At most one mail's files are in memory, base64-encoded, at once.
pub(crate) fn prepare(
    store: &Store,
    kind: &'static str,
    files: &[AttachmentRef],
    limits: &Limits<'_>,
    texts: impl Fn(&str) -> Result<(String, String), NotifierError>,
) -> Result<EventFiles, NotifierError> {
    let pick = |mask: &[bool], want: bool| -> Vec<AttachmentRef> {
        files
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m == want)
            .map(|(f, _)| f.clone())
            .collect()
    };
    let (plain_text, plain_html) = texts("")?;
    let mut mask = fit(files, limits.max_bytes, text_size(&plain_text, &plain_html));
    // The note naming what is left out lengthens the text: give up files from the end
    // until the whole fits.
    let (mut text, mut html) = loop {
        let (text, html) = texts(&left_out_note(&pick(&mask, false), limits.hint))?;
        if mail_size(&text, &html, &pick(&mask, true)) <= limits.max_bytes {
            break (text, html);
        }
        match mask.iter().rposition(|m| *m) {
            Some(last) => mask[last] = false,
            None => break (text, html),
        }
    };
    let mut left_out = pick(&mask, false);
    let before = left_out.len();
    let encoded = load(store, pick(&mask, true), &mut left_out)?;
    if left_out.len() != before {
        // Gone or damaged contents (logged by `load`) are named too; the note only
        // grew by names while whole files went, so the mail still fits.
        left_out.sort_by_key(|f| files.iter().position(|g| g == f));
        (text, html) = texts(&left_out_note(&left_out, limits.hint))?;
    }
    let attached: Vec<AttachmentRef> = encoded.iter().map(|f| f.meta.clone()).collect();
    let body = if encoded.is_empty() {
        None
    } else {
        let body = body_with_files(&text, &html, &encoded, limits.tag)?;
        drop(encoded);
        let sha256 = store.put_blob(&body.bytes)?;
        Some((body, sha256))
    };
    Ok(EventFiles {
        kind,
        without: texts(&left_out_note(files, limits.hint))?,
        body,
        attached,
        left_out,
    })
}

/// A file ready for its MIME part: its contents already in base64 (the raw bytes are not
/// kept, so a mail's files are in memory once).
pub(crate) struct EncodedFile {
    pub meta: AttachmentRef,
    base64: String,
}

/// Reads and encodes `files`. One whose stored contents are gone or no longer match its
/// SHA-256 is moved to `left_out` (and logged): a mail carries exactly the bytes the
/// ticket names, or names the file instead.
pub(crate) fn load(
    store: &Store,
    files: Vec<AttachmentRef>,
    left_out: &mut Vec<AttachmentRef>,
) -> Result<Vec<EncodedFile>, NotifierError> {
    let mut out = Vec::with_capacity(files.len());
    for meta in files {
        let bytes = store.blob(&meta.sha256)?;
        let intact = bytes
            .as_deref()
            .is_some_and(|b| hex(&Sha256::digest(b)) == meta.sha256);
        let Some(bytes) = bytes.filter(|_| intact) else {
            tracing::error!(sha256 = %meta.sha256, name = %meta.name, "attachment contents gone or damaged; named in the mail instead");
            left_out.push(meta);
            continue;
        };
        let mut encoded = Vec::with_capacity(base64_size(bytes.len() as u64) as usize);
        base64_encode_mime(&bytes, &mut encoded, false)?;
        drop(bytes);
        let base64 = String::from_utf8(encoded)
            .map_err(|_| NotifierError::Render("base64 is not ASCII".into()))?;
        out.push(EncodedFile { meta, base64 });
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// A mail body that carries files: `multipart/mixed` of the text and HTML (as
/// `multipart/alternative`) and one part per file.
pub(crate) struct FilesBody {
    /// `Content-Type: multipart/mixed; boundary="..."` and its CRLF: the last field of the
    /// mail's header.
    pub content_type: Vec<u8>,
    /// Everything after the header's empty line.
    pub bytes: Vec<u8>,
}

/// Builds the body. The boundaries derive from `tag` (keyed, so text written before the
/// mail cannot contain them), so the same event gives the same bytes every time.
pub(crate) fn body_with_files(
    text: &str,
    html: &str,
    files: &[EncodedFile],
    tag: &str,
) -> Result<FilesBody, NotifierError> {
    let mut parts = vec![MimePart::new(
        ContentType::new("multipart/alternative").attribute("boundary", format!("pd_a_{tag}")),
        vec![
            MimePart::new("text/plain", text),
            MimePart::new("text/html", html),
        ],
    )];
    for f in files {
        let name = header_name(&f.meta.name);
        parts.push(
            MimePart::new(
                ContentType::new(header_content_type(&f.meta.content_type))
                    .attribute("name", name.clone()),
                BodyPart::Text(f.base64.as_str().into()),
            )
            .attachment(name)
            // Already encoded: every file goes as base64, so its bytes arrive unchanged
            // whatever line endings or 8-bit data a "text/*" file holds.
            .transfer_encoding("base64"),
        );
    }
    let capacity = files.iter().map(|f| f.base64.len()).sum::<usize>() + 2 * text.len() + 4096;
    let mut out = Vec::with_capacity(capacity);
    MimePart::new(
        ContentType::new("multipart/mixed").attribute("boundary", format!("pd_m_{tag}")),
        parts,
    )
    .write_part(&mut out)?;
    // The part starts with its own Content-Type field and an empty line: that field ends
    // the mail's header, the rest is the body.
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| NotifierError::Render("multipart without a header".into()))?;
    let content_type = out[..split + 2].to_vec();
    // Drained in place: the files are not copied again.
    out.drain(..split + 4);
    Ok(FilesBody {
        content_type,
        bytes: out,
    })
}

/// A file name fit for a MIME header: no control characters (so no line breaks) and no
/// path separators, at most [`MAX_NAME_CHARS`] characters with the extension kept, never
/// empty. mail-builder quotes it and encodes non-ASCII as RFC 2047 words.
pub(crate) fn header_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let clean = clean.trim().trim_start_matches('.').trim();
    if clean.is_empty() {
        return "attachment".into();
    }
    if clean.chars().count() <= MAX_NAME_CHARS {
        return clean.to_string();
    }
    let ext: String = match clean.rsplit_once('.') {
        Some((_, e)) if (1..=10).contains(&e.chars().count()) => format!(".{e}"),
        _ => String::new(),
    };
    let keep = MAX_NAME_CHARS - ext.chars().count();
    clean.chars().take(keep).chain(ext.chars()).collect()
}

/// A content type fit for a MIME header: `type/subtype` of RFC 2045 token characters,
/// lowercase; anything else is `application/octet-stream`.
pub(crate) fn header_content_type(content_type: &str) -> String {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    match content_type.trim().split_once('/') {
        Some((t, s)) if token(t) && token(s) => content_type.trim().to_ascii_lowercase(),
        _ => "application/octet-stream".into(),
    }
}

/// The line naming files left out of a mail, then `hint` (where they are).
pub(crate) fn left_out_note(files: &[AttachmentRef], hint: &str) -> String {
    if files.is_empty() {
        return String::new();
    }
    let names: Vec<String> = files
        .iter()
        .map(|f| format!("{} ({})", header_name(&f.name), human_size(f.size)))
        .collect();
    format!(
        "Not attached, too large to send by mail: {}. {hint}",
        names.join(", ")
    )
}

/// A bell entry for the staff author of an answer whose files were too large to mail:
/// they learn it where they look, and can pass the files on another way.
pub(crate) fn left_out_bell(
    store: &Store,
    event: &Event,
    planned: &[OutboxItem],
) -> Result<Option<BellItem>, NotifierError> {
    let Some(mail) = planned
        .iter()
        .find(|i| i.kind == "staff_answer" && !i.files.left_out.is_empty())
    else {
        return Ok(None);
    };
    if store.staff(&event.author)?.is_none() {
        return Ok(None);
    }
    let names: Vec<String> = mail
        .files
        .left_out
        .iter()
        .map(|f| header_name(&f.name))
        .collect();
    let text = format!(
        "Too large to mail with your answer on #{}, named in it instead: {}",
        mail.ticket,
        names.join(", ")
    );
    Ok(Some(BellItem {
        staff: event.author.clone(),
        event: event.seq,
        ticket: mail.ticket,
        text: text.chars().take(200).collect(),
        read: false,
        at: event.at,
    }))
}

fn human_size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{} KB", bytes.div_ceil(1_000)),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> AttachmentRef {
        AttachmentRef {
            name: name.into(),
            content_type: "application/pdf".into(),
            size,
            sha256: String::new(),
        }
    }

    #[test]
    fn names_and_types_cannot_break_a_header() {
        assert_eq!(
            header_name("a\r\nBcc: evil@x.test\r\n.pdf"),
            "a  Bcc: evil@x.test  .pdf"
        );
        assert_eq!(header_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(header_name("\u{0}\u{7f}"), "attachment");
        assert_eq!(header_name("..."), "attachment");
        let long = format!("{}.pdf", "é".repeat(300));
        let cut = header_name(&long);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(".pdf"), "{cut}");
        assert_eq!(header_content_type("Image/PNG"), "image/png");
        for hostile in [
            "text/plain\r\nBcc: evil@x.test",
            "text/plain; name=x",
            "text",
            "/",
            "multipart/mixed\"",
            "",
        ] {
            assert_eq!(
                header_content_type(hostile),
                "application/octet-stream",
                "{hostile:?}"
            );
        }
    }

    #[test]
    fn files_fit_first_in_order_and_the_rest_is_named() {
        let files = [
            file("a.pdf", 6_000_000),
            file("big.iso", 30_000_000),
            file("b.png", 8_000_000),
            file("c.txt", 10_000_000),
        ];
        let mask = fit(&files, 25 * 1024 * 1024, 2_000);
        assert_eq!(mask, [true, false, true, false]);
        let pick = |want: bool| -> Vec<AttachmentRef> {
            files
                .iter()
                .zip(&mask)
                .filter(|(_, m)| **m == want)
                .map(|(f, _)| f.clone())
                .collect()
        };
        let (fits, left) = (pick(true), pick(false));
        assert!(mail_size("x", "y", &fits) <= 25 * 1024 * 1024);
        let note = left_out_note(&left, "Reply to this mail if you need them.");
        assert_eq!(
            note,
            "Not attached, too large to send by mail: big.iso (30.0 MB), c.txt (10.0 MB). Reply to this mail if you need them."
        );
        assert_eq!(left_out_note(&[], "x"), "");
        assert_eq!(
            fit(&files, 1_000, 0),
            [false; 4],
            "a cap below the text takes no file"
        );
    }

    fn encoded(name: &str, content_type: &str, bytes: &[u8]) -> EncodedFile {
        let mut b64 = Vec::new();
        base64_encode_mime(bytes, &mut b64, false).expect("encoded");
        EncodedFile {
            meta: AttachmentRef {
                name: name.into(),
                content_type: content_type.into(),
                size: bytes.len() as u64,
                sha256: hex(&Sha256::digest(bytes)),
            },
            base64: String::from_utf8(b64).expect("ascii"),
        }
    }

    #[test]
    fn the_body_carries_each_file_unchanged_and_is_the_same_every_time() {
        let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let text = b"bare\nlf\r\n.\r\ncr\r\xff\x00".to_vec();
        let files = [
            encoded("data.bin", "application/octet-stream", &binary),
            encoded(
                "r\u{e9}sum\u{e9}\r\nX-Evil: 1.txt",
                "text/plain\r\nX-Evil: 2",
                &text,
            ),
        ];
        let body = body_with_files("Hello", "<p>Hello</p>", &files, "tag1").expect("body");
        let again = body_with_files("Hello", "<p>Hello</p>", &files, "tag1").expect("body");
        assert_eq!(
            (&body.content_type, &body.bytes),
            (&again.content_type, &again.bytes)
        );
        assert_eq!(
            body.content_type,
            b"Content-Type: multipart/mixed; boundary=\"pd_m_tag1\"\r\n"
        );
        let mut mail = b"From: a@acme.test\r\nMIME-Version: 1.0\r\n".to_vec();
        mail.extend_from_slice(&body.content_type);
        mail.extend_from_slice(b"\r\n");
        mail.extend_from_slice(&body.bytes);
        assert!(
            !mail
                .split(|b| *b == b'\n')
                .any(|l| l.starts_with(b"X-Evil")),
            "no field injected"
        );
        assert!(mail.split(|b| *b == b'\n').all(|l| l.len() <= 998));
        let parsed = mail_parser::MessageParser::new()
            .parse(&mail)
            .expect("parses");
        assert_eq!(parsed.body_text(0).as_deref(), Some("Hello"));
        let got: Vec<(String, String, Vec<u8>)> = parsed
            .attachments()
            .map(|a| {
                use mail_parser::MimeHeaders;
                let ct = a
                    .content_type()
                    .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()));
                (
                    a.attachment_name().unwrap_or_default().to_string(),
                    ct.unwrap_or_default(),
                    a.contents().to_vec(),
                )
            })
            .collect();
        assert_eq!(
            got[0],
            ("data.bin".into(), "application/octet-stream".into(), binary)
        );
        assert_eq!(got[1].0, "r\u{e9}sum\u{e9}  X-Evil: 1.txt");
        assert_eq!(got[1].1, "application/octet-stream");
        // A text file goes as base64, so mail-parser hands it back as bytes, unchanged.
        assert_eq!(got[1].2, text);
        let other = body_with_files("Hello", "<p>Hello</p>", &files, "tag2").expect("body");
        assert_ne!(other.bytes, body.bytes, "the boundary follows the tag");
    }
}
