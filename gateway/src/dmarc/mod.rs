//! DKIM and DMARC (mail-auth): staff proof by a DKIM signature aligned with the From domain
//! (never by SPF) that binds every field the pipeline acts on, and the check of an end
//! user's From (does it pass DMARC; is it likely forged, so nothing automatic may answer it
//! and it may not widen a ticket). Every check is bounded: signatures counted before any is
//! hashed, header names checked, one deadline for the DNS.

mod headers;
mod records;
mod staff_proof;

pub use records::TxtAnswers;

use crate::GatewayError;
use headers::HeaderScan;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DmarcOutput, DmarcResult, MessageAuthenticator, Parameters,
    SpfOutput,
};
use std::net::IpAddr;
use std::time::Duration;

/// Most DKIM (and ARC) signatures a message may carry to be checked at all: each costs a
/// hash of the body and a DNS lookup, and real mail carries one to three.
const MAX_SIGNATURES: usize = 5;
/// How long one message's checks may take (DNS included).
const CHECK_DEADLINE: Duration = Duration::from_secs(10);
/// How long an end user's From may take to check: this runs for most mail, on the
/// pipeline's path, so a domain whose DNS does not answer must cost little.
const SENDER_DEADLINE: Duration = Duration::from_secs(3);
/// How long a domain's DMARC policy, or the silence of its DNS, is remembered.
const POLICY_TTL: Duration = Duration::from_secs(600);
/// Most domains remembered; past it the memory starts afresh.
const MAX_REMEMBERED: usize = 10_000;
/// Most fields a checked mail's header may have, and a checked signature may list.
const MAX_FIELDS: usize = 1_000;
const MAX_SIGNED_FIELDS: usize = 64;

/// Checks DKIM and DMARC for the pipeline.
pub struct DmarcChecker {
    runtime: tokio::runtime::Runtime,
    authenticator: MessageAuthenticator,
    answers: TxtAnswers,
    /// Each From domain's DMARC policy as last looked up (mail comes from few domains;
    /// the resolver does not cache every negative answer), and the registered domains
    /// whose DNS did not answer in time: their subdomains are not asked again for a while,
    /// so a sender cannot stall the pipeline with many names under a silent zone.
    remembered: std::sync::Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    policies: std::collections::HashMap<String, (Policy, std::time::Instant)>,
    silent: std::collections::HashMap<String, std::time::Instant>,
}

impl Remembered {
    fn forget_old(&mut self) {
        if self.policies.len() + self.silent.len() > MAX_REMEMBERED {
            self.policies.clear();
            self.silent.clear();
        }
    }
}

/// The registered domain a name falls under, roughly (the last two labels, three when
/// the second-level label is a short one under a country code, as in `co.uk`): what the
/// memory of silent DNS is kept by.
fn registered_domain(domain: &str) -> String {
    let labels: Vec<&str> = domain.trim_end_matches('.').rsplit('.').collect();
    let keep = match labels.as_slice() {
        [tld, second, _, ..] if tld.len() == 2 && second.len() <= 3 => 3,
        _ => 2,
    };
    labels
        .iter()
        .take(keep)
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(".")
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

/// What DMARC says of an end user's From.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderCheck {
    /// The From domain publishes DMARC and the mail passes it (aligned DKIM, or aligned SPF
    /// for mail that came by SMTP from the sender's side): the address is the sender's.
    pub authenticated: bool,
    /// Why the From is likely forged, if it is: several From addresses, or a domain that
    /// asks receivers to reject or quarantine mail failing DMARC and this mail fails it.
    pub spoofing: Option<String>,
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
            remembered: Default::default(),
        })
    }

    /// Asks one DNS server (a local validating resolver, say) instead of the system's:
    /// UDP, a 2 s timeout, one attempt (the checks have deadlines of their own).
    pub fn with_server(server: std::net::SocketAddr) -> Result<DmarcChecker, GatewayError> {
        use mail_auth::hickory_resolver::config::{ConnectionConfig, NameServerConfig};
        let runtime = runtime()?;
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        let authenticator = runtime
            .block_on(async {
                MessageAuthenticator::new(
                    ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                        server.ip(),
                        true,
                        vec![udp],
                    )]),
                    opts,
                )
            })
            .map_err(|e| GatewayError::Dns(format!("resolver {server}: {e}")))?;
        Ok(DmarcChecker {
            runtime,
            authenticator,
            answers: TxtAnswers::empty(),
            remembered: Default::default(),
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
            remembered: Default::default(),
        })
    }

    /// What DMARC says of an end user's From. Each domain's policy is remembered (one
    /// lookup per domain, not per mail); signatures are verified only when the policy is
    /// enforced or `need_authentication` asks whether the address is proven, and only
    /// those aligned with the From domain (SPF only for an aligned return path): every
    /// lookup goes to the From domain's own zone, so no sender can make the check of
    /// someone else's domain wait. A mail whose header names are malformed or that is too
    /// large to verify cheaply is not verified (it fails). When the lookups give no answer
    /// in time, a domain last known to enforce its policy is still taken to, and the mail
    /// counts as failing it; otherwise nothing is vouched or suspected, and the zone is not
    /// asked again for a while.
    pub fn sender_check(
        &self,
        raw: &[u8],
        arrival: &Arrival<'_>,
        need_authentication: bool,
    ) -> SenderCheck {
        let from = from_addresses(raw);
        if from.len() > 1 {
            return SenderCheck {
                authenticated: false,
                spoofing: Some(format!(
                    "the From field names {} addresses (DMARC exempts such mail, so nothing \
                     vouches for any of them)",
                    from.len()
                )),
            };
        }
        let Some(from) = from.into_iter().next() else {
            return SenderCheck::default();
        };
        let domain = domain_of(&from);
        let zone = registered_domain(&domain);
        let now = std::time::Instant::now();
        let (known, last_enforced) = {
            let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            remembered.forget_old();
            let last = remembered.policies.get(&domain).copied();
            let last_enforced = last.is_some_and(|(p, _)| enforced(p));
            if !last_enforced
                && remembered
                    .silent
                    .get(&zone)
                    .is_some_and(|since| now.duration_since(*since) < POLICY_TTL)
            {
                return SenderCheck::default();
            }
            let known = last
                .filter(|(_, at)| now.duration_since(*at) < POLICY_TTL)
                .map(|(p, _)| p);
            (known, last_enforced)
        };
        // Most mail: a domain known to ask for nothing, and nothing to prove.
        if !need_authentication && known.is_some_and(|p| !enforced(p)) {
            return SenderCheck::default();
        }
        // What is verified: the mail itself, or only its From when its signatures cannot
        // be checked cheaply (the policy still applies, and nothing passes).
        let scan = HeaderScan::of(raw);
        let only_from = format!("From: <{from}>\r\n\r\n");
        let mut message = match AuthenticatedMessage::parse(if checkable(&scan).is_ok() {
            raw
        } else {
            only_from.as_bytes()
        }) {
            Some(m) => m,
            None => return SenderCheck::default(),
        };
        if keep_aligned_signatures(&mut message, &domain).is_err() {
            message.dkim_headers.clear();
        }
        let aligned_return_path = arrival
            .mail_from
            .rsplit_once('@')
            .is_some_and(|(_, d)| registered_domain(d) == zone);
        let a = &self.authenticator;
        let cache = &self.answers;
        let mail_from_domain = arrival
            .mail_from
            .rsplit_once('@')
            .map_or(arrival.helo, |(_, d)| d)
            .to_string();
        let verdict = self.within(SENDER_DEADLINE, async {
            let no_spf = SpfOutput::new(String::new());
            let policy = match known {
                Some(p) => p,
                None => {
                    let looked_up =
                        dmarc(a, cache, &message, &[], &no_spf, &mail_from_domain).await;
                    if matches!(
                        looked_up.dkim_result(),
                        DmarcResult::TempError(_) | DmarcResult::PermError(_)
                    ) {
                        // No answer is not "no policy".
                        return None;
                    }
                    looked_up.policy()
                }
            };
            if !enforced(policy) && !need_authentication {
                return Some((policy, SenderCheck::default()));
            }
            let dkim = a
                .verify_dkim(Parameters::new(&message).with_txt_cache(cache))
                .await;
            let spf = match arrival.smtp_client {
                Some(ip) if aligned_return_path => {
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
                _ => no_spf.clone(),
            };
            let dmarc = dmarc(a, cache, &message, &dkim, &spf, &mail_from_domain).await;
            let pass = dmarc.dkim_result() == &DmarcResult::Pass
                || dmarc.spf_result() == &DmarcResult::Pass;
            Some((
                policy,
                SenderCheck {
                    authenticated: pass,
                    spoofing: (enforced(policy) && !pass).then(|| {
                        format!(
                            "{} publishes DMARC p={} and this mail fails it (dkim={:?} spf={:?})",
                            dmarc.domain(),
                            if policy == Policy::Reject {
                                "reject"
                            } else {
                                "quarantine"
                            },
                            dmarc.dkim_result(),
                            dmarc.spf_result()
                        )
                    }),
                },
            ))
        });
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        match verdict {
            Ok(Some((policy, check))) => {
                remembered.policies.insert(domain, (policy, now));
                check
            }
            Ok(None) | Err(_) if last_enforced => {
                tracing::warn!(%domain, "DMARC check gave no answer for a domain that enforces its policy; the mail counts as failing it");
                SenderCheck {
                    authenticated: false,
                    spoofing: Some(format!(
                        "{domain} enforces DMARC and the check of this mail gave no answer"
                    )),
                }
            }
            Ok(None) | Err(_) => {
                tracing::warn!(%zone, "DMARC check gave no answer; nothing vouched or suspected, and the zone is not asked again for 10 minutes");
                remembered.silent.insert(zone, now);
                SenderCheck::default()
            }
        }
    }

    /// Runs `checks` on the checker's runtime, giving up after [`CHECK_DEADLINE`].
    fn within_deadline<T>(
        &self,
        checks: impl std::future::Future<Output = T>,
    ) -> Result<T, String> {
        self.within(CHECK_DEADLINE, checks)
    }

    /// Runs `checks` on the checker's runtime, giving up after `deadline`.
    fn within<T>(
        &self,
        deadline: Duration,
        checks: impl std::future::Future<Output = T>,
    ) -> Result<T, String> {
        self.runtime
            .block_on(async { tokio::time::timeout(deadline, checks).await })
            .map_err(|_| {
                format!(
                    "DKIM/DMARC checks took longer than {} s",
                    deadline.as_secs()
                )
            })
    }
}

/// Whether a policy asks receivers to refuse or quarantine mail that fails DMARC.
fn enforced(policy: Policy) -> bool {
    matches!(policy, Policy::Reject | Policy::Quarantine)
}

/// The domain of an address, lowercase.
fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether a mail can be verified at a cost bounded in its size: clean field names, few
/// signatures, a header of ordinary length (mail-auth's header selection is quadratic in
/// the names a signature lists and grows with the fields it searches).
fn checkable(scan: &HeaderScan) -> Result<(), String> {
    if scan.malformed {
        return Err(
            "a header field name is malformed (spaces or controls in it, or a \
                    folded line with no field above)"
                .into(),
        );
    }
    if scan.signatures() > MAX_SIGNATURES {
        return Err(format!(
            "{} DKIM/ARC signatures (at most {MAX_SIGNATURES} are checked)",
            scan.signatures()
        ));
    }
    if scan.fields > MAX_FIELDS {
        return Err(format!(
            "{} header fields (at most {MAX_FIELDS} are checked)",
            scan.fields
        ));
    }
    Ok(())
}

/// Drops the DKIM signatures that could not count for DMARC (their domain is not the From
/// domain's organization) and refuses a signature listing too many fields to check
/// cheaply: only the From domain's own zone is asked for keys.
fn keep_aligned_signatures(
    message: &mut AuthenticatedMessage<'_>,
    domain: &str,
) -> Result<(), String> {
    let zone = registered_domain(domain);
    message
        .dkim_headers
        .retain(|h| registered_domain(&h.header.d.to_ascii_lowercase()) == zone);
    if let Some(h) = message
        .dkim_headers
        .iter()
        .find(|h| h.header.h.len() > MAX_SIGNED_FIELDS)
    {
        return Err(format!(
            "a DKIM signature lists {} fields (at most {MAX_SIGNED_FIELDS} are checked)",
            h.header.h.len()
        ));
    }
    Ok(())
}

/// DMARC's verdict on a message given its DKIM and SPF results.
async fn dmarc(
    a: &MessageAuthenticator,
    cache: &TxtAnswers,
    message: &AuthenticatedMessage<'_>,
    dkim: &[DkimOutput<'_>],
    spf: &SpfOutput,
    mail_from_domain: &str,
) -> DmarcOutput {
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

/// Every address of the From field(s), lowercase (a linear header parse).
fn from_addresses(raw: &[u8]) -> Vec<String> {
    let Some(headers) = mail_parser::MessageParser::new().parse_headers(raw) else {
        return Vec::new();
    };
    headers
        .header_values("From")
        .flat_map(|v| v.as_address().into_iter())
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
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
    fn zones_are_registered_domains() {
        assert_eq!(registered_domain("a.b.attacker.com"), "attacker.com");
        assert_eq!(registered_domain("mail.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("example.de"), "example.de");
        assert_eq!(registered_domain("x.test"), "x.test");
        assert_eq!(registered_domain("localhost"), "localhost");
    }
}
