//! Signed reply tokens carried in the plus part of a reply address (`org+TOKEN@domain`):
//! an HMAC over ticket and recipient, so a token names one ticket for one person.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of MAC kept in a token: 80 bits, 16 base32 characters.
const MAC_LEN: usize = 10;

fn mac(secret: &[u8], ticket: u64, recipient: &str) -> Option<[u8; MAC_LEN]> {
    let mut m = HmacSha256::new_from_slice(secret).ok()?;
    m.update(&ticket.to_be_bytes());
    m.update(recipient.trim().to_ascii_lowercase().as_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    Some(out)
}

/// A token for `recipient` to reply into `ticket`: `t<N>-<base32 mac>`, lowercase so it
/// survives mail systems that fold the case of local parts.
pub fn make_reply_token(secret: &[u8], ticket: u64, recipient: &str) -> String {
    let m = mac(secret, ticket, recipient).unwrap_or([0; MAC_LEN]);
    format!(
        "t{ticket}-{}",
        data_encoding::BASE32_NOPAD.encode(&m).to_ascii_lowercase()
    )
}

/// The signed reply address (`local+TOKEN@domain`) through which `recipient` writes into
/// `ticket`, built on the organization's address.
pub fn reply_address(secret: &[u8], ticket: u64, org_address: &str, recipient: &str) -> String {
    let token = make_reply_token(secret, ticket, recipient);
    match org_address.split_once('@') {
        Some((local, domain)) => format!("{local}+{token}@{domain}"),
        None => org_address.to_string(),
    }
}

/// The ticket a token names, if it is valid for `sender` (the person it was issued to).
pub fn check_reply_token(secret: &[u8], token: &str, sender: &str) -> Option<u64> {
    let rest = token.trim().to_ascii_lowercase();
    let rest = rest.strip_prefix('t')?;
    let (num, sig) = rest.split_once('-')?;
    let ticket: u64 = num.parse().ok()?;
    let given = data_encoding::BASE32_NOPAD
        .decode(sig.to_ascii_uppercase().as_bytes())
        .ok()?;
    let mut m = HmacSha256::new_from_slice(secret).ok()?;
    m.update(&ticket.to_be_bytes());
    m.update(sender.trim().to_ascii_lowercase().as_bytes());
    // verify_truncated_left compares in constant time.
    m.verify_truncated_left(&given).ok()?;
    (given.len() == MAC_LEN).then_some(ticket)
}

/// The `+tag` of an address's local part, if any.
pub fn plus_part(address: &str) -> Option<&str> {
    let (local, _) = address.rsplit_once('@')?;
    local
        .split_once('+')
        .map(|(_, tag)| tag)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let k = b"secret-key-for-tests-0123456789ab";
        let t = make_reply_token(k, 17, "Bob@Example.org");
        assert_eq!(check_reply_token(k, &t, "bob@example.org"), Some(17));
        assert_eq!(
            check_reply_token(k, &t.to_uppercase(), "bob@example.org"),
            Some(17)
        );
        assert_eq!(check_reply_token(k, &t, "eve@example.org"), None);
        assert_eq!(check_reply_token(b"other", &t, "bob@example.org"), None);
        let forged = t.replacen("t17-", "t18-", 1);
        assert_eq!(check_reply_token(k, &forged, "bob@example.org"), None);
        assert_eq!(check_reply_token(k, "t17-", "bob@example.org"), None);
        assert_eq!(check_reply_token(k, "garbage", "bob@example.org"), None);
    }

    #[test]
    fn reply_addresses_carry_a_valid_token() {
        let a = reply_address(b"k", 5, "acme@acme.test", "bob@x.test");
        assert!(
            a.starts_with("acme+t5-") && a.ends_with("@acme.test"),
            "{a}"
        );
        assert_eq!(
            plus_part(&a).and_then(|t| check_reply_token(b"k", t, "bob@x.test")),
            Some(5)
        );
    }

    #[test]
    fn plus_parts() {
        assert_eq!(plus_part("support+t1-abc@x.test"), Some("t1-abc"));
        assert_eq!(plus_part("support@x.test"), None);
        assert_eq!(plus_part("support+@x.test"), None);
    }
}
