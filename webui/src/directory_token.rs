//! Directory tokens: an organization's own sign-in service vouches for a user with an
//! HS256 JWT (issuer = the organization's slug, an `email` claim, a `jti` id, an expiry at
//! most ten minutes away), checked against the secret generated in the organization's
//! settings. That each `jti` is used once is checked against the store by the portal.

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
    TooLong,
    NoId,
    Replayed,
    NoEmail,
}

/// The longest a token may be valid: from now, and from its `iat` when it has one.
pub const MAX_LIFETIME_SECS: i64 = 600;

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
            TokenError::TooLong => {
                "The sign-in token is valid for too long: its expiry may be at most 10 minutes \
                 after it is issued and after now."
            }
            TokenError::NoId => {
                "The sign-in token has no jti claim; each token needs its own unique id."
            }
            TokenError::Replayed => {
                "This sign-in token has already been used; each token signs in once. Sign in \
                 again from your organization's sign-in page."
            }
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
    iat: Option<i64>,
    jti: Option<String>,
    email: Option<String>,
}

/// What a good token says: who, its id (to be used once) and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub email: String,
    pub jti: String,
    /// Unix seconds; the id must be remembered until then.
    pub expires: i64,
}

/// A `jti` longer than this is refused (it is only ever stored hashed).
const MAX_ID: usize = 256;

fn part<T: for<'de> Deserialize<'de>>(b64: &str) -> Result<T, TokenError> {
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(b64.trim_end_matches('=').as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Checks `token` and returns the (lowercased) email it vouches for, with its id.
pub fn verify(
    token: &str,
    secret: &[u8],
    issuer: &str,
    now_unix: i64,
) -> Result<Verified, TokenError> {
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
    let exp = match claims.exp {
        Some(exp) if exp > now_unix => exp,
        _ => return Err(TokenError::Expired),
    };
    let issued = claims.iat.unwrap_or(now_unix);
    if exp.saturating_sub(now_unix) > MAX_LIFETIME_SECS
        || exp.saturating_sub(issued) > MAX_LIFETIME_SECS
    {
        return Err(TokenError::TooLong);
    }
    let jti = claims
        .jti
        .filter(|j| !j.trim().is_empty() && j.len() <= MAX_ID)
        .ok_or(TokenError::NoId)?;
    // The desk's one address rule: the claim becomes the requester mail is sent to.
    let email = claims
        .email
        .and_then(|e| postdesk_desk::address::email_address(&e))
        .ok_or(TokenError::NoEmail)?;
    Ok(Verified {
        email,
        jti,
        expires: exp,
    })
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
    fn good_token_gives_its_email_and_id() {
        let t = sign(
            HS,
            r#"{"iss":"acme","exp":1300,"iat":1000,"jti":"j-1","email":"Ann@X.test"}"#,
            b"k",
        );
        assert_eq!(
            verify(&t, b"k", "acme", 1000),
            Ok(Verified {
                email: "ann@x.test".into(),
                jti: "j-1".into(),
                expires: 1300
            })
        );
    }

    #[test]
    fn lifetime_is_at_most_ten_minutes() {
        let claims = |exp: i64, iat: &str| {
            format!(r#"{{"iss":"acme","exp":{exp}{iat},"jti":"j","email":"a@x.test"}}"#)
        };
        let at = |c: String| verify(&sign(HS, &c, b"k"), b"k", "acme", 1000);
        assert!(at(claims(1600, "")).is_ok());
        assert_eq!(at(claims(1601, "")), Err(TokenError::TooLong));
        // Issued long ago, expiring soon: still a token made to live too long.
        assert_eq!(at(claims(1100, r#","iat":400"#)), Err(TokenError::TooLong));
        assert!(at(claims(1100, r#","iat":900"#)).is_ok());
    }

    #[test]
    fn every_fault_is_named() {
        let ok = r#"{"iss":"acme","exp":1500,"jti":"j","email":"a@x.test"}"#;
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
            verify(&sign(HS, ok, b"k"), b"k", "acme", 1500),
            Err(TokenError::Expired)
        );
        let no_exp = sign(HS, r#"{"iss":"acme","jti":"j","email":"a@x.test"}"#, b"k");
        assert_eq!(verify(&no_exp, b"k", "acme", 1), Err(TokenError::Expired));
        let no_id = sign(HS, r#"{"iss":"acme","exp":1500,"email":"a@x.test"}"#, b"k");
        assert_eq!(verify(&no_id, b"k", "acme", 1000), Err(TokenError::NoId));
        let no_mail = sign(HS, r#"{"iss":"acme","exp":1500,"jti":"j"}"#, b"k");
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
