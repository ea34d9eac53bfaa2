//! Folder names: configured as levels joined by "/", they become the server's own names
//! (its personal namespace prefix and hierarchy delimiter, modified UTF-7), and the folders
//! Postdesk moves mail into are made when missing.

use super::connect::{timed, ImapSession};
use super::namespace::personal_namespace;
use crate::GatewayError;
use async_imap::imap_proto::{MailboxDatum, Response, Status};

/// Where the account's own folders live on the server and how their levels are joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hierarchy {
    /// Put before every folder name but INBOX: "INBOX." on Courier and Cyrus, often "".
    pub prefix: String,
    /// Between the levels of a name: "." for Dovecot's maildir as installed, "/" for many
    /// others; `None` on a server whose folders have no levels.
    pub delimiter: Option<char>,
}

impl Hierarchy {
    /// The server's name for a configured folder name: "/" becomes the server's delimiter,
    /// anything beyond printable ASCII is written in modified UTF-7 (RFC 3501 5.1.3), and
    /// the personal namespace prefix (the server's own spelling) goes first unless the
    /// name already has it.
    pub fn server_name(&self, configured: &str) -> String {
        if configured.eq_ignore_ascii_case("INBOX") {
            return configured.to_string();
        }
        let name = modified_utf7(&match self.delimiter {
            Some(d) if d != '/' => configured.replace('/', d.encode_utf8(&mut [0; 4])),
            _ => configured.to_string(),
        });
        if self.prefix.is_empty() || has_prefix(&name, &self.prefix) {
            name
        } else {
            format!("{}{name}", self.prefix)
        }
    }
}

/// Whether `name` already starts with `prefix`, "INBOX" compared without regard to case
/// as RFC 3501 has it.
fn has_prefix(name: &str, prefix: &str) -> bool {
    let inbox = "INBOX";
    match (prefix.get(..inbox.len()), name.get(..inbox.len())) {
        (Some(p), Some(n)) if p.eq_ignore_ascii_case(inbox) => {
            n.eq_ignore_ascii_case(inbox) && name[inbox.len()..].starts_with(&prefix[inbox.len()..])
        }
        _ => name.starts_with(prefix),
    }
}

/// RFC 3501 5.1.3: printable ASCII stays, "&" becomes "&-", every other run of characters
/// is its UTF-16 in base64 with "," for "/", between "&" and "-".
fn modified_utf7(name: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Vec<u8> = run.drain(..).flat_map(u16::to_be_bytes).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out.push('-');
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut run, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            run.extend(c.encode_utf16(&mut [0; 2]).iter());
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Asks the server how its folders are named: NAMESPACE when it announces it (RFC 2342),
/// which alone tells a prefix such as "INBOX."; otherwise, or when that names no personal
/// namespace, `LIST "" ""`, which every server answers with its delimiter (RFC 3501 6.3.8).
pub(super) async fn discover(
    session: &mut ImapSession,
    announces_namespace: bool,
) -> Result<Hierarchy, GatewayError> {
    if announces_namespace {
        if let Some(hierarchy) = personal_namespace(session).await? {
            return Ok(hierarchy);
        }
    }
    let delimiter = list(session, "")
        .await?
        .into_iter()
        .find_map(|(delimiter, _)| delimiter);
    Ok(Hierarchy {
        prefix: String::new(),
        delimiter,
    })
}

/// Creates `folder` (a server name) unless the server lists it already. A CREATE answered
/// `[ALREADYEXISTS]` (RFC 5530) is the folder being there: another client, or the server
/// making a parent or sibling on its own, got in between the LIST and the CREATE.
pub(super) async fn ensure_folder(
    session: &mut ImapSession,
    folder: &str,
) -> Result<(), GatewayError> {
    let exists = list(session, folder)
        .await?
        .iter()
        .any(|(_, name)| name == folder);
    if !exists {
        let created = async {
            match session.create(folder).await {
                Err(async_imap::error::Error::No(why)) if already_exists(&why) => Ok(false),
                other => other.map(|()| true),
            }
        };
        if timed("CREATE", created).await? {
            tracing::info!(folder, "created mailbox folder");
        }
    }
    Ok(())
}

/// Whether a NO to CREATE says the mailbox exists (the RFC 5530 response code).
fn already_exists(why: &str) -> bool {
    why.contains("[ALREADYEXISTS]")
}

/// `LIST "" pattern`: each listed folder's delimiter and name. async-imap's own `list`
/// neither quotes the pattern nor looks at the command's outcome, so a refused LIST
/// looked like an empty one; here the pattern is quoted and a NO or BAD is an error.
async fn list(
    session: &mut ImapSession,
    pattern: &str,
) -> Result<Vec<(Option<char>, String)>, GatewayError> {
    timed("LIST", async {
        let command = format!("LIST \"\" {}", quoted(pattern)?);
        let tag = session.run_command(&command).await?;
        let mut listed = Vec::new();
        loop {
            let Some(response) = session.read_response().await? else {
                return Err(GatewayError::Imap(
                    "the server closed the connection during LIST".into(),
                ));
            };
            match response.parsed() {
                Response::MailboxData(MailboxDatum::List(data)) => listed.push((
                    data.delimiter.as_deref().and_then(delimiter_char),
                    data.name.to_string(),
                )),
                Response::Done {
                    tag: done,
                    status,
                    outcome,
                } if *done == tag => {
                    return match status {
                        Status::Ok => Ok(listed),
                        _ => Err(GatewayError::Imap(format!(
                            "{command} refused: {}",
                            outcome.information.as_deref().unwrap_or("no reason given")
                        ))),
                    };
                }
                // Nothing is selected yet, so nothing else here concerns the import.
                _ => {}
            }
        }
    })
    .await
}

/// A string as an IMAP quoted string; line breaks cannot be quoted.
fn quoted(s: &str) -> Result<String, GatewayError> {
    if s.contains(['\r', '\n', '\0']) {
        return Err(GatewayError::Imap(format!(
            "{s:?} cannot be sent: it has a line break"
        )));
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// A delimiter as the parser hands it over: one character, a backslash or quote escaped.
fn delimiter_char(raw: &str) -> Option<char> {
    let unescaped = match raw.strip_prefix('\\') {
        Some(rest) if !rest.is_empty() => rest,
        _ => raw,
    };
    let mut chars = unescaped.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hierarchy(prefix: &str, delimiter: Option<char>) -> Hierarchy {
        Hierarchy {
            prefix: prefix.into(),
            delimiter,
        }
    }

    #[test]
    fn slash_servers_keep_the_configured_names() {
        let slash = hierarchy("", Some('/'));
        assert_eq!(slash.server_name("Postdesk/Imported"), "Postdesk/Imported");
        assert_eq!(slash.server_name("INBOX"), "INBOX");
        assert_eq!(slash.server_name("Support"), "Support");
    }

    #[test]
    fn dovecot_maildir_as_installed_gets_dots() {
        let dots = hierarchy("", Some('.'));
        assert_eq!(dots.server_name("Postdesk/Imported"), "Postdesk.Imported");
        assert_eq!(dots.server_name("Postdesk/Failed"), "Postdesk.Failed");
        // Written the server's way already: unchanged.
        assert_eq!(dots.server_name("Postdesk.Imported"), "Postdesk.Imported");
    }

    #[test]
    fn a_personal_prefix_goes_first_once_and_never_before_inbox() {
        let courier = hierarchy("INBOX.", Some('.'));
        assert_eq!(
            courier.server_name("Postdesk/Imported"),
            "INBOX.Postdesk.Imported"
        );
        assert_eq!(courier.server_name("INBOX/Postdesk"), "INBOX.Postdesk");
        assert_eq!(courier.server_name("inbox.Postdesk"), "inbox.Postdesk");
        assert_eq!(courier.server_name("INBOX"), "INBOX");
        assert_eq!(courier.server_name("inbox"), "inbox");
        // "INBOXES" is not under "INBOX.".
        assert_eq!(courier.server_name("INBOXES"), "INBOX.INBOXES");
        let cyrus = hierarchy("INBOX/", Some('/'));
        assert_eq!(
            cyrus.server_name("Postdesk/Imported"),
            "INBOX/Postdesk/Imported"
        );
        // Other prefixes are compared exactly.
        let other = hierarchy("Mail/", Some('/'));
        assert_eq!(other.server_name("mail/Done"), "Mail/mail/Done");
        assert_eq!(other.server_name("Mail/Done"), "Mail/Done");
    }

    #[test]
    fn a_create_refused_as_already_there_is_the_folder_there() {
        assert!(already_exists(
            "code: None, info: Some(\"[ALREADYEXISTS] Mailbox already exists (0.004 secs).\")"
        ));
        assert!(!already_exists(
            "code: None, info: Some(\"[NOPERM] Permission denied\")"
        ));
    }

    #[test]
    fn servers_without_levels_get_the_name_as_it_is() {
        let flat = hierarchy("", None);
        assert_eq!(flat.server_name("Postdesk/Imported"), "Postdesk/Imported");
    }

    #[test]
    fn names_beyond_ascii_are_modified_utf7() {
        let dots = hierarchy("", Some('.'));
        // RFC 3501 5.1.3's own example, and "é" (U+00E9).
        assert_eq!(
            dots.server_name("~peter/mail/台北/日本語"),
            "~peter.mail.&U,BTFw-.&ZeVnLIqe-"
        );
        assert_eq!(dots.server_name("Support/Traité"), "Support.Trait&AOk-");
        assert_eq!(dots.server_name("R&D"), "R&-D");
        // Outside the basic plane: a surrogate pair in one run.
        assert_eq!(modified_utf7("😀"), "&2D3eAA-");
        assert_eq!(modified_utf7("Ünïcode"), "&ANw-n&AO8-code");
        // A prefix is the server's spelling already: not encoded again.
        let encoded_prefix = hierarchy("&AOk-.", Some('.'));
        assert_eq!(encoded_prefix.server_name("Traité"), "&AOk-.Trait&AOk-");
    }

    #[test]
    fn patterns_are_quoted_and_line_breaks_refused() {
        assert_eq!(quoted("").ok().as_deref(), Some("\"\""));
        assert_eq!(
            quoted("Help Desk/\"A\\B\"").ok().as_deref(),
            Some("\"Help Desk/\\\"A\\\\B\\\"\"")
        );
        assert!(quoted("a\r\nb LOGOUT").is_err());
    }

    #[test]
    fn delimiters_are_one_character() {
        assert_eq!(delimiter_char("."), Some('.'));
        assert_eq!(delimiter_char("/"), Some('/'));
        assert_eq!(delimiter_char("\\\\"), Some('\\'));
        assert_eq!(delimiter_char("\\"), Some('\\'));
        assert_eq!(delimiter_char(""), None);
        assert_eq!(delimiter_char("ab"), None);
    }
}
