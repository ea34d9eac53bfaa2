//! NAMESPACE (RFC 2342), which async-imap can neither send nor parse (its parser stops the
//! session at an answer it does not know): written and read on the session's connection
//! itself, byte by byte so nothing meant for the session is taken, then parsed here.

use super::connect::{timed, ImapSession};
use super::folders::Hierarchy;
use crate::GatewayError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// A NAMESPACE answer is a few dozen bytes; a server sending more is not answering it.
const MAX_ANSWER: usize = 16 * 1024;
/// Not of async-imap's form ("A0001"…), so no tag is used twice on the connection.
const TAG: &str = "pdns";

/// The account's personal namespace as the server announces it; `None` when it announces
/// none or refuses the command.
pub(super) async fn personal_namespace(
    session: &mut ImapSession,
) -> Result<Option<Hierarchy>, GatewayError> {
    timed("NAMESPACE", async {
        let stream = session.get_mut();
        stream
            .write_all(format!("{TAG} NAMESPACE\r\n").as_bytes())
            .await?;
        stream.flush().await?;
        let mut budget = MAX_ANSWER;
        let mut personal = None;
        loop {
            let line = read_response(stream, &mut budget).await?;
            if let Some(namespaces) = strip_prefix_ignoring_case(&line, b"* NAMESPACE ") {
                personal = parse_personal(namespaces);
                if personal.is_none() {
                    tracing::info!(answer = ?String::from_utf8_lossy(&line), "NAMESPACE names no usable personal namespace; asking LIST");
                }
            } else if line.starts_with(b"* ") {
                // Other untagged data: nothing is selected, so none that matters here.
            } else if let Some(outcome) = strip_prefix_ignoring_case(&line, TAG.as_bytes()) {
                return Ok(strip_prefix_ignoring_case(outcome, b" OK").and(personal));
            } else {
                return Err(GatewayError::Imap(format!(
                    "unexpected answer to NAMESPACE: {:?}",
                    String::from_utf8_lossy(&line)
                )));
            }
        }
    })
    .await
}

/// One response: a line, with the literals it announces (`{n}` before its CRLF) read in,
/// without its final CRLF; within `budget` bytes all told.
async fn read_response(
    stream: &mut (impl AsyncRead + Unpin + ?Sized),
    budget: &mut usize,
) -> Result<Vec<u8>, GatewayError> {
    let too_long =
        || GatewayError::Imap(format!("NAMESPACE answer longer than {MAX_ANSWER} bytes"));
    let mut line = Vec::new();
    loop {
        *budget = budget.checked_sub(1).ok_or_else(too_long)?;
        line.push(stream.read_u8().await?);
        if let Some(before) = line.strip_suffix(b"\r\n") {
            match literal_length(before) {
                None => {
                    line.truncate(line.len() - 2);
                    return Ok(line);
                }
                Some(n) if n <= *budget => {
                    *budget -= n;
                    let start = line.len();
                    line.resize(start + n, 0);
                    stream.read_exact(&mut line[start..]).await?;
                }
                Some(_) => return Err(too_long()),
            }
        }
    }
}

/// The length of the literal a line announces at its end: `{12}` or `{12+}`.
fn literal_length(line: &[u8]) -> Option<usize> {
    let inside = line.strip_suffix(b"}")?;
    let open = inside.iter().rposition(|&b| b == b'{')?;
    let digits = &inside[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn strip_prefix_ignoring_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = bytes.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &bytes[prefix.len()..])
}

/// The first personal namespace from what follows `* NAMESPACE `:
/// `(("prefix" "delimiter")…) other-users shared`, the delimiter possibly NIL, strings
/// quoted or literal. `None` for NIL (no personal namespace) or anything unreadable.
pub(super) fn parse_personal(namespaces: &[u8]) -> Option<Hierarchy> {
    let mut p = Parser(namespaces);
    p.token(b"((")?;
    let prefix = String::from_utf8(p.string()?).ok()?;
    p.token(b" ")?;
    let delimiter = match p.token(b"NIL") {
        Some(()) => None,
        None => {
            let quoted = String::from_utf8(p.quoted()?).ok()?;
            let mut chars = quoted.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => return None,
            }
        }
    };
    // Extensions may follow the delimiter; the descriptor must at least go on sensibly.
    if !matches!(p.0.first(), Some(b')' | b' ')) {
        return None;
    }
    Some(Hierarchy { prefix, delimiter })
}

/// Reads IMAP syntax from the front of a byte string.
struct Parser<'a>(&'a [u8]);

impl Parser<'_> {
    fn token(&mut self, token: &[u8]) -> Option<()> {
        self.0 = strip_prefix_ignoring_case(self.0, token)?;
        Some(())
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.0.first()? {
            b'"' => self.quoted(),
            b'{' => self.literal(),
            _ => None,
        }
    }

    /// `"…"`, `\\` and `\"` unescaped.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        let mut rest = self.0.strip_prefix(b"\"")?;
        let mut out = Vec::new();
        loop {
            match *rest {
                [b'"', ref after @ ..] => {
                    self.0 = after;
                    return Some(out);
                }
                [b'\\', c @ (b'\\' | b'"'), ref after @ ..] => {
                    out.push(c);
                    rest = after;
                }
                [c, ref after @ ..] if c != b'\\' && c != b'\r' && c != b'\n' => {
                    out.push(c);
                    rest = after;
                }
                _ => return None,
            }
        }
    }

    /// `{n}` CRLF and n bytes.
    fn literal(&mut self) -> Option<Vec<u8>> {
        let end = self.0.windows(3).position(|w| w == b"}\r\n")?;
        let n = literal_length(&self.0[..=end])?;
        let data = self.0.get(end + 3..end + 3 + n)?;
        self.0 = &self.0[end + 3 + n..];
        Some(data.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn personal(answer: &str) -> Option<(String, Option<char>)> {
        parse_personal(answer.as_bytes()).map(|h| (h.prefix, h.delimiter))
    }

    #[test]
    fn namespaces_as_servers_announce_them() {
        // Dovecot as installed (maildir), and with `separator = /`.
        assert_eq!(
            personal(r#"(("" ".")) NIL NIL"#),
            Some(("".into(), Some('.')))
        );
        assert_eq!(
            personal(r#"(("" "/")) NIL NIL"#),
            Some(("".into(), Some('/')))
        );
        // Courier and Cyrus without altnamespace.
        assert_eq!(
            personal(r##"(("INBOX." ".")) NIL (("#shared." "."))"##),
            Some(("INBOX.".into(), Some('.')))
        );
        // RFC 2342's examples: several personal namespaces (the first counts), a flat
        // one, an escaped backslash, extensions.
        assert_eq!(
            personal(r##"(("" "/")("#mh/" "/" "X-PARAM" ("FLAG1" "FLAG2"))) NIL NIL"##),
            Some(("".into(), Some('/')))
        );
        assert_eq!(personal(r#"(("" NIL)) NIL NIL"#), Some(("".into(), None)));
        assert_eq!(
            personal(r#"(("" "\\")) NIL NIL"#),
            Some(("".into(), Some('\\')))
        );
        assert_eq!(
            personal(r#"(("" "/" "X-EXT" ("A"))) NIL NIL"#),
            Some(("".into(), Some('/')))
        );
        // A literal prefix.
        assert_eq!(
            personal("(({6}\r\nINBOX. \".\")) NIL NIL"),
            Some(("INBOX.".into(), Some('.')))
        );
        assert_eq!(personal("nil NIL NIL"), None);
    }

    #[test]
    fn garbage_is_no_namespace() {
        for answer in [
            "",
            "((",
            r#"(("" "..")) NIL NIL"#,
            r#"(("" "."#,
            r#"(("unterminated))"#,
            "(({99}\r\nshort \".\")) NIL NIL",
            "(({99999999999}\r\nx \".\")) NIL NIL",
            "(INBOX \".\") NIL NIL",
        ] {
            assert_eq!(personal(answer), None, "{answer:?}");
        }
    }

    #[test]
    fn literal_lengths() {
        assert_eq!(literal_length(b"* NAMESPACE (({6}"), Some(6));
        assert_eq!(literal_length(b"x {12+}"), Some(12));
        assert_eq!(literal_length(b"x {}"), None);
        assert_eq!(literal_length(b"x {1a}"), None);
        assert_eq!(literal_length(b"x {9999999999}"), None);
        assert_eq!(literal_length(b"x \"{5}\""), None);
    }

    #[tokio::test]
    async fn responses_are_read_with_their_literals_and_nothing_after() {
        let wire: &[u8] =
            b"* NAMESPACE (({6}\r\nINBOX. \".\")) NIL NIL\r\npdns OK done\r\nA0009 next";
        let mut stream = wire;
        let mut budget = MAX_ANSWER;
        let first = read_response(&mut stream, &mut budget).await.ok();
        assert_eq!(
            first.as_deref(),
            Some(&b"* NAMESPACE (({6}\r\nINBOX. \".\")) NIL NIL"[..])
        );
        let second = read_response(&mut stream, &mut budget).await.ok();
        assert_eq!(second.as_deref(), Some(&b"pdns OK done"[..]));
        // What follows is left for the session.
        assert_eq!(stream, b"A0009 next");
    }

    #[tokio::test]
    async fn endless_answers_stop_at_the_budget() {
        let endless = vec![b'x'; MAX_ANSWER + 10];
        let mut stream = &endless[..];
        let mut budget = MAX_ANSWER;
        assert!(read_response(&mut stream, &mut budget).await.is_err());
        let huge_literal: &[u8] = b"* NAMESPACE (({100000}\r\nxx";
        let mut stream = huge_literal;
        let mut budget = MAX_ANSWER;
        assert!(read_response(&mut stream, &mut budget).await.is_err());
    }
}
