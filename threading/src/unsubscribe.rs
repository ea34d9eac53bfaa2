//! One-click unsubscribe tokens (RFC 8058) for the `List-Unsubscribe` link of automatic
//! mail: the recipient's address and an HMAC over it, so the link names one person and
//! only the installation can make it. No I/O; the secret comes from the caller.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of MAC kept: 128 bits.
const MAC_LEN: usize = 16;
/// The longest address a token carries (RFC 5321's path limit).
const MAX_ADDRESS: usize = 254;

fn keyed(secret: &[u8], address: &str) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret).ok()?;
    m.update(b"unsubscribe\0");
    m.update(address.as_bytes());
    Some(m)
}

fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

/// The token that unsubscribes `address` (lowercased) from automatic mail.
pub fn make_unsubscribe_token(secret: &[u8], address: &str) -> String {
    let address = address.trim().to_ascii_lowercase();
    let mac = keyed(secret, &address)
        .map(|m| m.finalize().into_bytes()[..MAC_LEN].to_vec())
        .unwrap_or_default();
    format!("{}-{}", base32(address.as_bytes()), base32(&mac))
}

/// The address a token was made for, if it is genuine.
pub fn check_unsubscribe_token(secret: &[u8], token: &str) -> Option<String> {
    let (address, mac) = token.trim().split_once('-')?;
    let decode = |s: &str| {
        data_encoding::BASE32_NOPAD
            .decode(s.to_ascii_uppercase().as_bytes())
            .ok()
    };
    let address = String::from_utf8(decode(address)?).ok()?;
    let mac = decode(mac)?;
    if address.len() > MAX_ADDRESS || mac.len() != MAC_LEN {
        return None;
    }
    // verify_truncated_left compares in constant time.
    keyed(secret, &address)?.verify_truncated_left(&mac).ok()?;
    Some(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_one_address_and_needs_the_secret() {
        let t = make_unsubscribe_token(b"one installation", " Rita@Customer.TEST ");
        assert_eq!(
            check_unsubscribe_token(b"one installation", &t).as_deref(),
            Some("rita@customer.test")
        );
        assert_eq!(check_unsubscribe_token(b"another one", &t), None);
        let (_, mac) = t.split_once('-').expect("two parts");
        let forged = format!("{}-{mac}", base32(b"boss@customer.test"));
        assert_eq!(check_unsubscribe_token(b"one installation", &forged), None);
        for junk in ["", "-", "abc", "abc-def", &t[..t.len() - 2]] {
            assert_eq!(
                check_unsubscribe_token(b"one installation", junk),
                None,
                "{junk}"
            );
        }
        assert!(t
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
