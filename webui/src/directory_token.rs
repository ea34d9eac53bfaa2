//! Directory tokens: an organization's own sign-in service vouches for a user with an
//! HS256 JWT (issuer = the organization's slug, an `email` claim, an expiry), checked
//! against the secret generated in the organization's settings.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Why a token was not accepted; the portal shows this to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    Algorithm,
    Signature,
    Issuer,
    Expired,
    NoEmail,
}

impl TokenError {
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Malformed => "The sign-in token is not a JWT.",
            TokenError::Algorithm => "The sign-in token is not signed with HS256.",
            TokenError::Signature => {
                "The sign-in token's signature does not match this portal's secret."
            }
            TokenError::Issuer => "The sign-in token was issued for another portal.",
            TokenError::Expired => "The sign-in token has expired or has no expiry; sign in again.",
            TokenError::NoEmail => "The sign-in token names no email address.",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    exp: Option<i64>,
    email: Option<String>,
}

fn part<T: for<'de> Deserialize<'de>>(b64: &str) -> Result<T, TokenError> {
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(b64.trim_end_matches('=').as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Checks `token` and returns the (lowercased) email it vouches for.
pub fn verify(
    token: &str,
    secret: &[u8],
    issuer: &str,
    now_unix: i64,
) -> Result<String, TokenError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = part(h)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    let signature = data_encoding::BASE64URL_NOPAD
        .decode(sig.trim_end_matches('=').as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::Signature)?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(c.as_bytes());
    // Constant-time comparison inside verify_slice.
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::Signature)?;
    let claims: Claims = part(c)?;
    if claims.iss.as_deref() != Some(issuer) {
        return Err(TokenError::Issuer);
    }
    if claims.exp.is_none_or(|exp| exp <= now_unix) {
        return Err(TokenError::Expired);
    }
    claims
        .email
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| e.contains('@') && !e.chars().any(|c| c.is_whitespace() || c.is_control()))
        .ok_or(TokenError::NoEmail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(header: &str, claims: &str, secret: &[u8]) -> String {
        let enc = |s: &str| data_encoding::BASE64URL_NOPAD.encode(s.as_bytes());
        let (h, c) = (enc(header), enc(claims));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("key");
        mac.update(format!("{h}.{c}").as_bytes());
        let sig = data_encoding::BASE64URL_NOPAD.encode(&mac.finalize().into_bytes());
        format!("{h}.{c}.{sig}")
    }

    const HS: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn good_token_gives_its_email() {
        let t = sign(
            HS,
            r#"{"iss":"acme","exp":2000,"email":"Ann@X.test"}"#,
            b"k",
        );
        assert_eq!(verify(&t, b"k", "acme", 1000), Ok("ann@x.test".into()));
    }

    #[test]
    fn every_fault_is_named() {
        let ok = r#"{"iss":"acme","exp":2000,"email":"a@x.test"}"#;
        assert_eq!(
            verify(&sign(HS, ok, b"other"), b"k", "acme", 1000),
            Err(TokenError::Signature)
        );
        let none = sign(r#"{"alg":"none"}"#, ok, b"k");
        assert_eq!(
            verify(&none, b"k", "acme", 1000),
            Err(TokenError::Algorithm)
        );
        assert_eq!(
            verify(&sign(HS, ok, b"k"), b"k", "beta", 1000),
            Err(TokenError::Issuer)
        );
        assert_eq!(
            verify(&sign(HS, ok, b"k"), b"k", "acme", 2000),
            Err(TokenError::Expired)
        );
        let no_exp = sign(HS, r#"{"iss":"acme","email":"a@x.test"}"#, b"k");
        assert_eq!(verify(&no_exp, b"k", "acme", 1), Err(TokenError::Expired));
        let no_mail = sign(HS, r#"{"iss":"acme","exp":2000}"#, b"k");
        assert_eq!(
            verify(&no_mail, b"k", "acme", 1000),
            Err(TokenError::NoEmail)
        );
        assert_eq!(
            verify("a.b", b"k", "acme", 1000),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify("", b"k", "acme", 1000), Err(TokenError::Malformed));
    }
}
