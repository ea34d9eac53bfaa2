//! Staff proof: a staff member's mail proves who wrote it only by a DKIM signature aligned
//! with the From domain that binds every field the pipeline acts on, and a recent Date.

use super::headers::HeaderScan;
use super::{checkable, dmarc, domain_of, keep_aligned_signatures, DmarcChecker};
use mail_auth::{AuthenticatedMessage, DkimResult, DmarcResult, Parameters, SpfOutput};

/// Fields that must not be doubled in a staff member's mail whether signed or not: a
/// second Content-Type could make the signed body read differently.
const ONCE_IF_PRESENT: [&str; 3] = ["content-type", "content-transfer-encoding", "mime-version"];
/// A signed Date further back than this is not proof: it bounds replaying a staff member's
/// signed mail (the Message-ID, signed too, stops replays of one mail in one organization).
const MAX_PROOF_AGE: time::Duration = time::Duration::days(7);
/// Fields a staff member's proving signature must cover, and each present only once.
const MUST_SIGN: [&str; 3] = ["from", "date", "message-id"];
/// Fields the pipeline acts on (threading, the summary, CCs): when present, each must be
/// there once and covered by the proving signature, or an attacker could add or rewrite
/// it on a replayed signed mail.
const MUST_SIGN_IF_PRESENT: [&str; 7] = [
    "subject",
    "to",
    "cc",
    "in-reply-to",
    "references",
    "reply-to",
    "sender",
];

impl DmarcChecker {
    /// Whether `raw` proves that staff member `sender` wrote it, as it is: clean field
    /// names; one From naming exactly `sender`, one Date of the last 7 days, one
    /// Message-ID; and a DKIM signature that passes, is aligned with the From domain under
    /// its DMARC policy, signs the whole body (no `l=`) and covers From, Date, Message-ID
    /// and every field the pipeline acts on that the mail has (Subject, To, Cc,
    /// In-Reply-To, References, Reply-To, Sender), each present once. SPF never proves a
    /// person (behind an MTA every mail comes from the MTA). `Ok` holds what proved it,
    /// `Err` why nothing did.
    pub fn staff_proof(&self, raw: &[u8], sender: &str) -> Result<String, String> {
        let scan = HeaderScan::of(raw);
        checkable(&scan)?;
        if scan.count("dkim-signature") == 0 {
            return Err("no DKIM signature".into());
        }
        if let Some(field) = MUST_SIGN.iter().find(|f| scan.count(f) != 1) {
            return Err(format!(
                "a staff member's mail needs exactly one {field} field"
            ));
        }
        let present: Vec<&str> = MUST_SIGN_IF_PRESENT
            .into_iter()
            .filter(|f| scan.count(f) > 0)
            .collect();
        if let Some(field) = present
            .iter()
            .chain(ONCE_IF_PRESENT.iter())
            .find(|f| scan.count(f) > 1)
        {
            return Err(format!("the {field} field occurs more than once"));
        }
        let mut message = AuthenticatedMessage::parse(raw)
            .ok_or_else(|| "the message could not be parsed for DKIM".to_string())?;
        let domain = match message.from.as_slice() {
            [one] if one.trim().eq_ignore_ascii_case(sender) => domain_of(one),
            _ => {
                return Err(format!(
                    "the From field must name exactly one address, {sender}"
                ))
            }
        };
        check_date(&message)?;
        keep_aligned_signatures(&mut message, &domain)?;
        if message.dkim_headers.is_empty() {
            return Err(format!(
                "no DKIM signature by {domain} (or its organization)"
            ));
        }
        let a = &self.authenticator;
        let cache = &self.answers;
        let covers = |s: &mail_auth::dkim::Signature| {
            s.l == 0
                && MUST_SIGN
                    .iter()
                    .chain(present.iter())
                    .all(|want| s.h.iter().any(|h| h.eq_ignore_ascii_case(want)))
        };
        let checked = self.within_deadline(async {
            let dkim = a
                .verify_dkim(Parameters::new(&message).with_txt_cache(cache))
                .await;
            let proving: Vec<_> = dkim
                .iter()
                .filter(|o| o.result() == &DkimResult::Pass)
                .filter(|o| o.signature().is_some_and(covers))
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
                "none of {checked} DKIM signature(s) passes while signing the whole body and \
                 covering {}",
                MUST_SIGN
                    .iter()
                    .chain(present.iter())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            Err(format!(
                "DMARC for {}: dkim={:?}",
                dmarc.domain(),
                dmarc.dkim_result()
            ))
        }
    }
}

/// The one Date header, within [`MAX_PROOF_AGE`] of now (and not a day ahead).
fn check_date(message: &AuthenticatedMessage<'_>) -> Result<(), String> {
    let mut dates = message
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"date"));
    let (Some((_, value)), None) = (dates.next(), dates.next()) else {
        return Err("a staff member's mail needs exactly one Date field".into());
    };
    let date = mail_parser::parsers::MessageStream::new(value)
        .parse_date()
        .into_datetime()
        .map(|d| d.to_timestamp())
        .ok_or_else(|| "the Date field could not be read".to_string())?;
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
