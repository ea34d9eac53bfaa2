//! What counts as an email address wherever a person types one (forms, the API, mail
//! commands, the CLI): one rule, one parser.

/// Longest address accepted (RFC 5321's path limit less the brackets).
pub const MAX_ADDRESS: usize = 254;

/// A mailbox address mail can be sent to, trimmed and lowercased: a local part of
/// RFC 5322 dot-atom characters (no commas, semicolons, colons, parentheses, quotes or
/// brackets, which mail clients read as address syntax), at most 64 characters; one `@`;
/// a host name ([`host_name`]: ASCII, an international domain in its `xn--` form), dotted
/// or a single label (`localhost`, an intranet's `helpdesk`); at most 254 characters.
pub fn email_address(a: &str) -> Option<String> {
    let a = a.trim().to_ascii_lowercase();
    let (local, domain) = a.split_once('@')?;
    let ok = a.len() <= MAX_ADDRESS && local_part(local) && host_name(domain);
    ok.then_some(a)
}

/// RFC 5322 `dot-atom`: `atext` runs separated by single dots, at most 64 characters
/// (RFC 5321's limit).
fn local_part(local: &str) -> bool {
    const SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    local.len() <= 64
        && local.split('.').all(|run| {
            !run.is_empty()
                && run
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIALS.contains(&b))
        })
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
        for good in [
            "o'brien+tag@x.org",
            "a.b-c_d@mail.x-y.org",
            "admin@localhost",
            "ops@helpdesk",
            "a@xn--bcher-kva.de",
        ] {
            assert_eq!(email_address(good).as_deref(), Some(good), "{good:?}");
        }
        for bad in [
            "",
            "ann",
            "@x.org",
            "a@b@c.org",
            "a b@c.org",
            "a@c.org.",
            "a@c..org",
            "<a@c.org>",
            "a\r\n@c.org",
            "root,victim@x.org",
            "a;b@x.org",
            "a:b@x.org",
            "a(c)@x.org",
            "\"a\"@x.org",
            ".a@x.org",
            "a..b@x.org",
            "a@x,y.org",
            "a@x_y.org",
            "a@-x.org",
            "a@[1.2.3.4]",
            "a@bücher.de",
            "ä@x.org",
        ] {
            assert_eq!(email_address(bad), None, "{bad:?}");
        }
        assert_eq!(email_address(&format!("{}@x.org", "a".repeat(65))), None);
        assert_eq!(
            email_address(&format!("a@{}.org", vec!["b".repeat(60); 5].join("."))),
            None
        );
    }

    #[test]
    fn host_names() {
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
