//! Subject handling: the "Incident:"/"Bug:" type prefix, reply/forward prefixes, `[#N]` tags.

/// The ticket type a subject prefix asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypePrefix {
    Question,
    Incident,
    Bug,
}

/// Splits a type prefix (`Incident:` or `Bug:`, any case, optional spaces, possibly after
/// reply prefixes) off a subject; returns the type and the summary without it.
pub fn split_type_prefix(subject: &str) -> (TypePrefix, String) {
    let trimmed = subject.trim();
    for (word, ty) in [("incident", TypePrefix::Incident), ("bug", TypePrefix::Bug)] {
        let Some(head) = trimmed.get(..word.len()) else {
            continue;
        };
        if head.eq_ignore_ascii_case(word) {
            let rest = trimmed[word.len()..].trim_start();
            if let Some(after) = rest.strip_prefix(':') {
                return (ty, after.trim().to_string());
            }
        }
    }
    (TypePrefix::Question, trimmed.to_string())
}

/// Reply and forward prefixes in the languages mail clients use.
const PREFIXES: &[&str] = &[
    "re",
    "fw",
    "fwd",
    "aw",
    "wg",
    "sv",
    "vs",
    "vb",
    "antw",
    "doorst",
    "tr",
    "rv",
    "enc",
    "res",
    "ref",
    "rif",
    "r",
    "i",
    "odp",
    "pd",
    "fs",
    "ynt",
    "ilt",
    "İlt",
    "atb",
    "ha",
    "přeposlat",
    "odpověď",
    "továbbítás",
    "válasz",
    "vá",
    "πρθ",
    "απ",
    "σχετ",
    "הועבר",
    "השב",
    "回复",
    "回覆",
    "答复",
    "转发",
    "轉寄",
    "返信",
    "転送",
    "ответ",
    "отв",
    "пересл",
    "fwd: re",
    "trans",
    "antwort",
    "weiterleitung",
    "réf",
    "confidential",
];

fn strip_one_prefix(s: &str) -> Option<&str> {
    let s = s.trim_start();
    // "[list-name] " prefixes
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let inner = &rest[..end];
            if !inner.starts_with('#') && !inner.contains(':') {
                return Some(&rest[end + 1..]);
            }
            // [fwd: subject]
            if let Some(fwd) = inner
                .get(..4)
                .filter(|h| h.eq_ignore_ascii_case("fwd:"))
                .map(|_| &inner[4..])
            {
                if rest[end + 1..].trim().is_empty() {
                    return Some(fwd);
                }
            }
        }
    }
    let colon = s.find([':', '：'])?;
    let head = s[..colon].trim();
    // "Re[2]" / "Re(2)" / "RE 2"
    let word = head
        .split(['[', '('])
        .next()
        .unwrap_or(head)
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim();
    let lw = word.to_lowercase();
    if PREFIXES.iter().any(|p| p.to_lowercase() == lw) {
        let width = if s[colon..].starts_with('：') { 3 } else { 1 };
        Some(&s[colon + width..])
    } else {
        None
    }
}

/// A subject without reply/forward prefixes, list tags or a trailing "(fwd)", for comparing.
pub fn normalize_subject(subject: &str) -> String {
    let mut s = subject.trim();
    while let Some(rest) = strip_one_prefix(s) {
        s = rest.trim();
    }
    let mut out = s.to_string();
    loop {
        let t = out.trim_end();
        let lower = t.to_lowercase();
        if lower.ends_with("(fwd)") {
            out = t[..t.len() - 5].trim_end().to_string();
        } else {
            break;
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The ticket number of a `[#N]` tag in a subject.
pub fn subject_tag(subject: &str) -> Option<u64> {
    let mut rest = subject;
    while let Some(pos) = rest.find("[#") {
        let after = &rest[pos + 2..];
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(']') {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_prefixes() {
        assert_eq!(
            split_type_prefix("Incident: mail down"),
            (TypePrefix::Incident, "mail down".into())
        );
        assert_eq!(
            split_type_prefix("  bug :crash on save"),
            (TypePrefix::Bug, "crash on save".into())
        );
        assert_eq!(split_type_prefix("BUG:x"), (TypePrefix::Bug, "x".into()));
        assert_eq!(
            split_type_prefix("Bugfix: nope"),
            (TypePrefix::Question, "Bugfix: nope".into())
        );
        assert_eq!(
            split_type_prefix("Question about incidents"),
            (TypePrefix::Question, "Question about incidents".into())
        );
    }

    #[test]
    fn tags() {
        assert_eq!(subject_tag("Re: [#42] printer"), Some(42));
        assert_eq!(subject_tag("[#x] [#7]"), Some(7));
        assert_eq!(subject_tag("[#] none"), None);
        assert_eq!(subject_tag("#42"), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_subject("Re: Fwd: AW: hello"), "hello");
        assert_eq!(normalize_subject("RE[2]: hello  world"), "hello world");
        assert_eq!(normalize_subject("[list] re: topic (fwd)"), "topic");
    }
}
