//! What counts as an email address wherever a person types one (forms, the API, mail
//! commands, the CLI): one rule, one parser.

/// Longest address accepted (RFC 5321's path limit less the brackets).
pub const MAX_ADDRESS: usize = 254;

/// A mailbox address mail can be sent to, trimmed and lowercased: one `@`, a dotted
/// domain, no spaces, controls, quotes or angle brackets, at most 254 characters.
pub fn email_address(a: &str) -> Option<String> {
    checked_address(a, false)
}

/// An address as [`email_address`] takes it, or one at `localhost` (the default mail
/// domain of organization addresses, for mail from programs on the same machine).
pub fn local_or_email_address(a: &str) -> Option<String> {
    checked_address(a, true)
}

fn checked_address(a: &str, localhost: bool) -> Option<String> {
    let a = a.trim().to_ascii_lowercase();
    let (local, domain) = a.split_once('@')?;
    let dotted = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    let ok = a.len() <= MAX_ADDRESS
        && !local.is_empty()
        && (dotted || localhost && domain == "localhost")
        && !domain.contains('@')
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == '"');
    ok.then_some(a)
}

/// A list of addresses typed one per line or separated by commas, each checked, without
/// repeats, in the order given; the first bad one is named.
pub fn address_list(text: &str) -> Result<Vec<String>, String> {
    let mut list = Vec::new();
    for item in text
        .lines()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let a = email_address(item).ok_or_else(|| format!("{item:?} is not an email address"))?;
        if !list.contains(&a) {
            list.push(a);
        }
    }
    Ok(list)
}

/// The mailbox an address delivers to, for counting and blocking: lowercase, without a
/// `+tag`, quotes or a trailing dot on the domain (the store's one rule).
pub fn mailbox(address: &str) -> String {
    postdesk_store::blocked_form(address)
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
            "a@c..org",
            "<a@c.org>",
            "a\r\n@c.org",
        ] {
            assert_eq!(email_address(bad), None, "{bad:?}");
        }
        assert_eq!(email_address(&format!("{}@x.org", "a".repeat(250))), None);
    }

    #[test]
    fn lists_drop_repeats_and_name_the_bad_one() {
        assert_eq!(
            address_list("a@x.org, B@x.org\n\na@x.org"),
            Ok(vec!["a@x.org".to_string(), "b@x.org".to_string()])
        );
        assert!(address_list("a@x.org, nope").unwrap_err().contains("nope"));
    }
}
