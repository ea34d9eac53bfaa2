//! Where DKIM and DMARC lookups get their TXT answers: the system resolver through
//! mail-auth's cache, or only the records of a file (zone-file lines) on closed networks and
//! in tests.

use crate::GatewayError;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::Spf;
use mail_auth::{ResolverCache, Txt};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Where TXT answers come from. The resolver asks this first; a miss goes to real DNS
/// (none in records-file mode, so a miss is "no record").
pub struct TxtAnswers {
    entries: Mutex<HashMap<Box<str>, (Txt, std::time::Instant)>>,
    /// The entries are the whole zone: a name not listed does not exist.
    authoritative: bool,
}

impl TxtAnswers {
    pub(super) fn empty() -> TxtAnswers {
        TxtAnswers {
            entries: Mutex::new(HashMap::new()),
            authoritative: false,
        }
    }

    /// Reads `NAME TXT "value" ["more"...]` lines (zone-file style; `;` and `#` start
    /// comments). Values are parsed as DKIM keys, DMARC policies or SPF records by name.
    pub fn from_records(text: &str) -> Result<TxtAnswers, GatewayError> {
        let mut answers = TxtAnswers::empty();
        answers.authoritative = true;
        let forever = std::time::Instant::now() + std::time::Duration::from_secs(100 * 365 * 86400);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            let bad = || GatewayError::Dns(format!("line {}: expected NAME TXT \"value\"", n + 1));
            let (name, rest) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
            let rest = rest.trim_start();
            let rest = rest.strip_prefix("IN").map(str::trim_start).unwrap_or(rest);
            let rest = rest.strip_prefix("TXT").ok_or_else(bad)?.trim();
            let value: String = rest
                .split('"')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s)
                .collect();
            if value.is_empty() {
                return Err(bad());
            }
            let name = name.to_ascii_lowercase();
            let fqdn = if name.ends_with('.') {
                name
            } else {
                format!("{name}.")
            };
            let bytes = value.as_bytes();
            let txt: Txt = if fqdn.starts_with("_dmarc.") {
                Txt::from(Dmarc::parse(bytes))
            } else if fqdn.contains("._domainkey.") {
                Txt::from(DomainKey::parse(bytes))
            } else {
                Txt::from(Spf::parse(bytes))
            };
            if let Txt::Error(e) = &txt {
                return Err(GatewayError::Dns(format!("line {}: {fqdn}: {e}", n + 1)));
            }
            answers.insert(fqdn.into(), txt, forever);
        }
        Ok(answers)
    }
}

impl ResolverCache<Box<str>, Txt> for TxtAnswers {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().ok()?;
        match entries.get(name) {
            Some((txt, until)) if *until > std::time::Instant::now() => Some(txt.clone()),
            _ if self.authoritative => Some(Txt::Error(mail_auth::Error::Dns(
                mail_auth::DnsError::RecordNotFound(ResponseCode::NXDomain),
            ))),
            _ => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.lock().ok()?.remove(name).map(|(t, _)| t)
    }

    fn insert(&self, key: Box<str>, value: Txt, valid_until: std::time::Instant) {
        if let Ok(mut e) = self.entries.lock() {
            // Bounded: a flood of distinct names cannot grow it without limit.
            if e.len() > 10_000 {
                e.clear();
            }
            e.insert(key, (value, valid_until));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_file_lines() {
        let ok = TxtAnswers::from_records(
            "; comment\n# also\n_dmarc.x.test. IN TXT \"v=DMARC1; p=reject\"\nx.test TXT \"v=spf1 \" \"-all\"\n",
        )
        .expect("valid");
        assert!(ok
            .get("_dmarc.x.test.")
            .is_some_and(|t| matches!(t, Txt::Dmarc(_))));
        assert!(ok.get("x.test.").is_some_and(|t| matches!(t, Txt::Spf(_))));
        assert!(
            ok.get("other.test.")
                .is_some_and(|t| matches!(t, Txt::Error(_))),
            "authoritative miss"
        );
        for bad in [
            "x.test A 1.2.3.4",
            "x.test TXT",
            "_dmarc.x.test TXT \"garbage\"",
            "lonely",
        ] {
            assert!(TxtAnswers::from_records(bad).is_err(), "{bad}");
        }
    }
}
