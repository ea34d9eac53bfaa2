//! DKIM and DMARC (mail-auth): staff proof by a DKIM signature aligned with the From domain
//! (never by SPF), and the check that keeps acknowledgements from going to forged senders.
//! DNS answers come from the system resolver or, for tests and closed networks, from a
//! records file — behind one trait.

use crate::GatewayError;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Dmarc;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::spf::Spf;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, Parameters, ResolverCache,
    SpfOutput, Txt,
};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Where TXT answers come from. The resolver asks this first; a miss goes to real DNS
/// (none in records-file mode, so a miss is "no record").
pub struct TxtAnswers {
    entries: Mutex<HashMap<Box<str>, (Txt, std::time::Instant)>>,
    /// The entries are the whole zone: a name not listed does not exist.
    authoritative: bool,
}

impl TxtAnswers {
    fn empty() -> TxtAnswers {
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

/// Most DKIM signatures a message may carry to be checked at all: each costs a hash of
/// the body and a DNS lookup, and real mail carries one to three.
const MAX_DKIM_SIGNATURES: usize = 5;
/// How long one message's checks may take (DNS included).
const CHECK_DEADLINE: Duration = Duration::from_secs(10);
/// A signed Date further back than this is not proof: it limits replaying a staff member's
/// old signed mail (the Message-ID, which must be signed too, stops replays of one mail).
const MAX_PROOF_AGE: time::Duration = time::Duration::days(7);
/// Headers a staff member's signature must cover to prove the mail.
const PROOF_HEADERS: [&str; 3] = ["from", "date", "message-id"];

/// Checks DKIM and DMARC: whether aligned DKIM proves a staff member wrote a mail, and
/// whether a new request's From is likely forged (so no acknowledgement goes to it).
pub struct DmarcChecker {
    runtime: tokio::runtime::Runtime,
    authenticator: MessageAuthenticator,
    answers: TxtAnswers,
}

/// How a message reached us, for SPF: only SMTP from the sending host tells anything;
/// behind an MTA (LMTP) or from a mailbox (IMAP) the peer is not the sender.
pub struct Arrival<'a> {
    /// The SMTP client, when the message came by SMTP straight from the sender's side.
    pub smtp_client: Option<IpAddr>,
    pub helo: &'a str,
    pub mail_from: &'a str,
    /// Our host name, as the receiving MTA.
    pub host: &'a str,
}

impl DmarcChecker {
    /// Uses the system's resolvers (`/etc/resolv.conf`).
    pub fn system() -> Result<DmarcChecker, GatewayError> {
        let runtime = runtime()?;
        let authenticator = runtime
            .block_on(async { MessageAuthenticator::new_system_conf() })
            .map_err(|e| GatewayError::Dns(format!("system resolver: {e}")))?;
        Ok(DmarcChecker {
            runtime,
            authenticator,
            answers: TxtAnswers::empty(),
        })
    }

    /// Answers only from a records file; nothing goes to the network.
    pub fn from_records(text: &str) -> Result<DmarcChecker, GatewayError> {
        let answers = TxtAnswers::from_records(text)?;
        let runtime = runtime()?;
        let authenticator = runtime
            .block_on(async {
                MessageAuthenticator::new(
                    ResolverConfig::from_parts(None, vec![], vec![]),
                    ResolverOpts::default(),
                )
            })
            .map_err(|e| GatewayError::Dns(format!("resolver: {e}")))?;
        Ok(DmarcChecker {
            runtime,
            authenticator,
            answers,
        })
    }

    /// Whether `raw` proves that staff member `sender` wrote it: the one From address is
    /// `sender`, and a DKIM signature that passes, is aligned with the From domain under
    /// its DMARC policy, covers From, Date and Message-ID, signs the whole body (no `l=`)
    /// and carries a Date of the last 7 days. SPF never proves a person (behind an MTA
    /// every mail comes from the MTA). `Ok` holds what proved it, `Err` why nothing did.
    pub fn staff_proof(&self, raw: &[u8], sender: &str) -> Result<String, String> {
        let signatures = dkim_signature_count(raw);
        if signatures == 0 {
            return Err("no DKIM signature".into());
        }
        if signatures > MAX_DKIM_SIGNATURES {
            return Err(format!(
                "{signatures} DKIM signatures (at most {MAX_DKIM_SIGNATURES} are checked)"
            ));
        }
        let message = AuthenticatedMessage::parse(raw)
            .ok_or_else(|| "the message could not be parsed for DKIM".to_string())?;
        match message.from.as_slice() {
            [one] if one.trim().eq_ignore_ascii_case(sender) => {}
            _ => {
                return Err(format!(
                    "the From header must name exactly one address, {sender}"
                ))
            }
        }
        check_date(&message)?;
        let a = &self.authenticator;
        let cache = &self.answers;
        let checked = self.within_deadline(async {
            let dkim = a
                .verify_dkim(Parameters::new(&message).with_txt_cache(cache))
                .await;
            let proving: Vec<_> = dkim
                .iter()
                .filter(|o| o.result() == &DkimResult::Pass)
                .filter(|o| o.signature().is_some_and(covers_proof_headers))
                .cloned()
                .collect();
            let spf = SpfOutput::new(String::new());
            let dmarc = dmarc(a, cache, &message, &proving, &spf, "").await;
            (dkim.len(), proving.len(), dmarc)
        })?;
        let (checked, proving, dmarc) = checked;
        if dmarc.dkim_result() == &DmarcResult::Pass {
            Ok(format!(
                "DKIM aligned with {} under its DMARC policy",
                dmarc.domain()
            ))
        } else if proving == 0 {
            Err(format!(
                "none of {checked} DKIM signature(s) passes while covering From, Date and \
                 Message-ID and the whole body"
            ))
        } else {
            Err(format!(
                "DMARC for {}: dkim={:?}",
                dmarc.domain(),
                dmarc.dkim_result()
            ))
        }
    }

    /// Why the From of a new request is likely forged, if it is: its domain publishes a
    /// DMARC policy of reject or quarantine and the mail passes neither aligned DKIM nor
    /// aligned SPF (SPF only for mail that came by SMTP from the sender's side). A lookup
    /// that fails or takes too long tells nothing, and nothing is suspected.
    pub fn suspected_spoofing(&self, raw: &[u8], arrival: &Arrival<'_>) -> Option<String> {
        let message = AuthenticatedMessage::parse(raw)?;
        let a = &self.authenticator;
        let cache = &self.answers;
        let mail_from_domain = arrival
            .mail_from
            .rsplit_once('@')
            .map_or(arrival.helo, |(_, d)| d)
            .to_string();
        let signatures = dkim_signature_count(raw);
        let verdict = self.within_deadline(async {
            let no_spf = SpfOutput::new(String::new());
            let dmarc_of = |dkim, spf| dmarc(a, cache, &message, dkim, spf, &mail_from_domain);
            // The policy first (one cached lookup): most domains ask for nothing.
            let policy = dmarc_of(&[], &no_spf).await;
            if !matches!(policy.policy(), Policy::Reject | Policy::Quarantine) {
                return None;
            }
            let dkim = if signatures <= MAX_DKIM_SIGNATURES {
                a.verify_dkim(Parameters::new(&message).with_txt_cache(cache))
                    .await
            } else {
                Vec::new()
            };
            let spf = match arrival.smtp_client {
                Some(ip) => {
                    a.verify_spf(
                        Parameters::new(SpfParameters::verify_mail_from(
                            ip,
                            arrival.helo,
                            arrival.host,
                            arrival.mail_from,
                        ))
                        .with_txt_cache(cache),
                    )
                    .await
                }
                None => no_spf.clone(),
            };
            let dmarc = dmarc_of(&dkim, &spf).await;
            let pass = dmarc.dkim_result() == &DmarcResult::Pass
                || dmarc.spf_result() == &DmarcResult::Pass;
            (!pass).then(|| {
                format!(
                    "{} publishes DMARC p={} and this mail fails it (dkim={:?} spf={:?})",
                    dmarc.domain(),
                    if policy.policy() == Policy::Reject {
                        "reject"
                    } else {
                        "quarantine"
                    },
                    dmarc.dkim_result(),
                    dmarc.spf_result()
                )
            })
        });
        match verdict {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "DMARC policy check gave no answer; nothing suspected");
                None
            }
        }
    }

    /// Runs `checks` on the checker's runtime, giving up after [`CHECK_DEADLINE`].
    fn within_deadline<T>(
        &self,
        checks: impl std::future::Future<Output = T>,
    ) -> Result<T, String> {
        self.runtime
            .block_on(async { tokio::time::timeout(CHECK_DEADLINE, checks).await })
            .map_err(|_| {
                format!(
                    "DKIM/DMARC checks took longer than {} s",
                    CHECK_DEADLINE.as_secs()
                )
            })
    }
}

/// DMARC's verdict on a message given its DKIM and SPF results.
async fn dmarc(
    a: &MessageAuthenticator,
    cache: &TxtAnswers,
    message: &AuthenticatedMessage<'_>,
    dkim: &[mail_auth::DkimOutput<'_>],
    spf: &SpfOutput,
    mail_from_domain: &str,
) -> mail_auth::DmarcOutput {
    a.verify_dmarc(
        Parameters::new(DmarcParameters {
            message,
            dkim_output: dkim,
            dkim2_output: None,
            rfc5321_mail_from_domain: mail_from_domain,
            spf_output: spf,
        })
        .with_txt_cache(cache),
    )
    .await
}

/// How many DKIM-Signature fields the header section holds: one scan, before anything
/// costly (each signature means a body hash and a DNS lookup).
fn dkim_signature_count(raw: &[u8]) -> usize {
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(raw.len());
    raw[..header_end]
        .split(|&b| b == b'\n')
        .filter(|line| line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"dkim-signature:"))
        .count()
}

/// Whether a signature covers what binds a mail to its author and moment and signs the
/// whole body (with `l=`, text could be appended to a signed mail).
fn covers_proof_headers(s: &mail_auth::dkim::Signature) -> bool {
    s.l == 0
        && PROOF_HEADERS
            .iter()
            .all(|want| s.h.iter().any(|h| h.eq_ignore_ascii_case(want)))
}

/// The one Date header, within [`MAX_PROOF_AGE`] of now (and not a day ahead).
fn check_date(message: &AuthenticatedMessage<'_>) -> Result<(), String> {
    let mut dates = message
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"date"));
    let (Some((_, value)), None) = (dates.next(), dates.next()) else {
        return Err("a staff member's mail needs exactly one Date header".into());
    };
    let date = mail_parser::parsers::MessageStream::new(value)
        .parse_date()
        .into_datetime()
        .map(|d| d.to_timestamp())
        .ok_or_else(|| "the Date header could not be read".to_string())?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if date < now - MAX_PROOF_AGE.whole_seconds() || date > now + 86_400 {
        return Err(format!(
            "the signed Date is not within the last {} days: an old signed mail replayed \
             proves nothing",
            MAX_PROOF_AGE.whole_days()
        ));
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, GatewayError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(GatewayError::Io)
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
