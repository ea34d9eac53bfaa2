//! What every form handler checks the same way: the answer to a stale or forged form, and
//! what counts as an email address.

use crate::pages::refuse;
use axum::http::StatusCode;
use axum::response::Response;

/// The answer to a post whose CSRF token is missing or wrong: nothing was done.
pub fn forged() -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "The form was stale or forged; nothing was done. Reload the page and try again.",
    )
}

/// A mailbox address mail can be sent to, lowercased: one `@`, a dotted domain, no
/// spaces, controls or angle brackets, at most 254 characters.
pub fn email_address(a: &str) -> Option<String> {
    let a = a.trim().to_ascii_lowercase();
    let (local, domain) = a.split_once('@')?;
    let ok = a.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == '"');
    ok.then_some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            email_address(" Ann@Example.ORG "),
            Some("ann@example.org".into())
        );
        for bad in [
            "",
            "ann",
            "@x.org",
            "ann@x",
            "a@b@c.org",
            "a b@c.org",
            "a@c.org.",
            "<a@c.org>",
            "a\r\n@c.org",
        ] {
            assert_eq!(email_address(bad), None, "{bad:?}");
        }
    }
}
