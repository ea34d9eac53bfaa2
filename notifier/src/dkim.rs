//! DKIM: key generation, the DNS record to publish, and signing outbound mail (mail-auth).
//! Signed headers follow RFC 6376 practice: the ones that identify and thread the message.

use crate::NotifierError;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use postdesk_store::DkimKeyRecord;

/// Headers covered by the signature (those present are signed; From always is).
const SIGNED_HEADERS: [&str; 16] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Auto-Submitted",
    // RFC 8058 asks that a one-click unsubscribe be covered by the signature; named twice
    // ("oversigned"), so a second one added in transit breaks the signature instead of
    // being read first.
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Ok(Algorithm::Ed25519),
            "rsa" => Ok(Algorithm::Rsa),
            _ => Err(format!("unknown algorithm {s:?}: use ed25519 or rsa")),
        }
    }
}

/// A new key for organization `org` under `selector` (checked by the desk's rule), made
/// at `at`: the record the settings page and `postdesk dkim generate` both store.
pub fn new_key_record(
    org: &str,
    selector: &str,
    algorithm: Algorithm,
    at: time::OffsetDateTime,
) -> postdesk_desk::DeskResult<DkimKeyRecord> {
    let selector = postdesk_desk::organizations::dkim_selector(selector)?;
    let (algorithm, private_key, public_key) = generate_key(algorithm)
        .map_err(|e| postdesk_desk::DeskError::Internal(format!("DKIM key generation: {e}")))?;
    Ok(DkimKeyRecord {
        org: org.to_string(),
        selector,
        algorithm,
        private_key,
        public_key,
        created_at: at,
    })
}

/// A new key: (algorithm name, PKCS#8 DER private key, base64 public key for `p=`).
fn generate_key(algorithm: Algorithm) -> Result<(String, Vec<u8>, String), NotifierError> {
    let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
    match algorithm {
        Algorithm::Ed25519 => {
            let der =
                Ed25519Key::generate_pkcs8().map_err(|e| NotifierError::Dkim(e.to_string()))?;
            let key =
                Ed25519Key::from_pkcs8_der(&der).map_err(|e| NotifierError::Dkim(e.to_string()))?;
            Ok(("ed25519".into(), der, b64(&key.public_key())))
        }
        Algorithm::Rsa => {
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
            let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                .map_err(|e| NotifierError::Dkim(e.to_string()))?;
            let der = private
                .to_pkcs8_der()
                .map_err(|e| NotifierError::Dkim(e.to_string()))?
                .as_bytes()
                .to_vec();
            let public = private
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| NotifierError::Dkim(e.to_string()))?;
            Ok(("rsa".into(), der, b64(public.as_bytes())))
        }
    }
}

/// The zone-file line to publish: `SEL._domainkey.DOMAIN. IN TXT "v=DKIM1; k=..; p=.."`,
/// the value split into 255-byte strings as DNS requires.
pub fn dns_record(key: &DkimKeyRecord, domain: &str) -> String {
    let value = format!("v=DKIM1; k={}; p={}", key.algorithm, key.public_key);
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "{}._domainkey.{domain}. IN TXT {}",
        key.selector,
        chunks.join(" ")
    )
}

/// `raw` with a DKIM-Signature header in front.
pub fn sign(raw: &[u8], key: &DkimKeyRecord, domain: &str) -> Result<Vec<u8>, NotifierError> {
    let mut out = signature_field(raw, key, domain)?;
    out.extend_from_slice(raw);
    Ok(out)
}

/// The DKIM-Signature field (with its CRLF) that signs `raw`, to put in front of it.
pub(crate) fn signature_field(
    raw: &[u8],
    key: &DkimKeyRecord,
    domain: &str,
) -> Result<Vec<u8>, NotifierError> {
    let err = |e: mail_auth::Error| NotifierError::Dkim(e.to_string());
    let header = match key.algorithm.as_str() {
        "ed25519" => {
            DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&key.private_key).map_err(err)?)
                .domain(domain)
                .selector(&key.selector)
                .headers(SIGNED_HEADERS)
                .sign(raw)
                .map_err(err)?
                .to_header()
        }
        "rsa" => DkimSigner::from_key(
            RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs8(
                key.private_key.as_slice().into(),
            ))
            .map_err(err)?,
        )
        .domain(domain)
        .selector(&key.selector)
        .headers(SIGNED_HEADERS)
        .sign(raw)
        .map_err(err)?
        .to_header(),
        other => {
            return Err(NotifierError::Dkim(format!(
                "unknown key algorithm {other}"
            )))
        }
    };
    // mail-auth 0.12 may fold just before the closing ';' ("…b=<sig>\r\n\t;"). A verifier
    // empties b= and canonicalizes to "b= ;" while the signer hashed "b=;": long (RSA)
    // signatures then fail everywhere (dkimpy showed it). Keep the ';' on the b= line.
    let header = match header.strip_suffix("\r\n\t;\r\n") {
        Some(head) => format!("{head};\r\n"),
        None => header,
    };
    Ok(header.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_public_key_matches_the_signing_key() {
        let (_, der, public_b64) = generate_key(Algorithm::Rsa).expect("key");
        let signing = RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs8(
            der.as_slice().into(),
        ))
        .expect("parse");
        let spki = data_encoding::BASE64
            .decode(public_b64.as_bytes())
            .expect("b64");
        let pkcs1 = signing.public_key();
        assert!(
            spki.ends_with(&pkcs1),
            "SPKI does not wrap the signing key's public key"
        );
    }
}
