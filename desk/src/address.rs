//! What counts as an email address wherever a person types one (forms, the API, mail
//! commands, the CLI): one rule, one parser.

/// Longest address accepted (RFC 5321's path limit less the brackets).
pub const MAX_ADDRESS: usize = 254;

/// A mailbox address mail can be sent to, trimmed and lowercased: one `@`, a dotted
/// domain, no spaces, controls, quotes or angle brackets, at most 254 characters.
pub fn email_address(a: &str) -> Option<String> {
    checked_address(a, false)
}

/// An address as [`email_address`] takes it, or one at a single-label host name
/// (`localhost`, an intranet's `helpdesk`): organization and staff addresses on a mail
/// domain of that kind, which `serve` accepts.
pub fn local_or_email_address(a: &str) -> Option<String> {
    checked_address(a, true)
}

/// A DNS host name, lowercase ASCII: dot-separated labels of 1 to 63 letters, digits and
/// hyphens, none starting or ending with a hyphen, at most 253 characters in all.
pub fn host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn checked_address(a: &str, single_label: bool) -> Option<String> {
    let a = a.trim().to_ascii_lowercase();
    let (local, domain) = a.split_once('@')?;
    let dotted = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    let ok = a.len() <= MAX_ADDRESS
        && !local.is_empty()
        && (dotted || single_label && host_name(domain))
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
    fn host_names_and_single_label_addresses() {
        for good in ["localhost", "helpdesk", "mail.example.org", "a-b.x1.test"] {
            assert!(host_name(good), "{good:?}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            ".x.test",
            "x.test.",
            "a..b",
            "-a.test",
            "a-.test",
            "*.com",
            "a_b.test",
            "Caps.test",
            "a b",
            long_label.as_str(),
        ] {
            assert!(!host_name(bad), "{bad:?}");
        }
        assert!(!host_name(&format!("{}.test", ["abc"; 70].join("."))));
        assert_eq!(
            local_or_email_address("Admin@LocalHost").as_deref(),
            Some("admin@localhost")
        );
        assert_eq!(
            local_or_email_address("ops@helpdesk").as_deref(),
            Some("ops@helpdesk")
        );
        assert_eq!(email_address("ops@helpdesk"), None);
        for bad in ["ops@-x", "ops@x_y", "@helpdesk", "ops@"] {
            assert_eq!(local_or_email_address(bad), None, "{bad:?}");
        }
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
