//! HTML bodies: sanitized for display (ammonia) and turned into plain text for stripping.

/// HTML safe to show: scripts, styles, event handlers and remote-loading attributes removed.
pub fn sanitize_html(html: &str) -> String {
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto", "cid"].into())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(html)
        .to_string()
}

/// Quote marks written before a line, however deeply its `<blockquote>`s nest: the
/// stripper only asks whether a line is quoted, and a mark per level would let thousands of
/// nested blockquotes make the text quadratic in the HTML.
const MAX_QUOTE_MARKS: usize = 8;

/// Plain text of an HTML body: block elements become line breaks, quoted blocks
/// (`<blockquote>`) become `> ` lines so the reply stripper sees them as quotes.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut quote_depth = 0usize;
    let mut skip_depth = 0usize; // inside <style>, <script>, <head>
    let mut rest = html;
    let mut at_line_start = true;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |e| &after[e + 3..]);
            continue;
        }
        if rest.starts_with('<') {
            // An unclosed tag runs to the end of the text.
            let end = rest.find('>').unwrap_or(rest.len());
            let tag = &rest[1..end];
            rest = &rest[(end + 1).min(rest.len())..];
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            match name.as_str() {
                "style" | "script" | "head" | "title" => {
                    if closing {
                        skip_depth = skip_depth.saturating_sub(1);
                    } else if !tag.ends_with('/') {
                        skip_depth += 1;
                    }
                }
                "blockquote" => {
                    if closing {
                        quote_depth = quote_depth.saturating_sub(1);
                    } else {
                        quote_depth += 1;
                    }
                    newline(&mut out, &mut at_line_start);
                }
                "br" => {
                    push_line_break(&mut out, &mut at_line_start, quote_depth);
                }
                "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table"
                | "ul" | "ol" | "hr" | "pre" => {
                    newline(&mut out, &mut at_line_start);
                }
                _ => {}
            }
            continue;
        }
        let next = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..next];
        rest = &rest[next..];
        if skip_depth > 0 {
            continue;
        }
        let decoded = decode_entities(text);
        let mut words = decoded.split_whitespace().peekable();
        let leading_space = decoded.starts_with(char::is_whitespace);
        if words.peek().is_none() {
            if leading_space && !at_line_start && !out.ends_with(' ') {
                out.push(' ');
            }
            continue;
        }
        if at_line_start {
            for _ in 0..quote_depth.min(MAX_QUOTE_MARKS) {
                out.push_str("> ");
            }
            at_line_start = false;
        } else if leading_space && !out.ends_with(' ') {
            out.push(' ');
        }
        let joined = words.collect::<Vec<_>>().join(" ");
        out.push_str(&joined);
        if decoded.ends_with(char::is_whitespace) {
            out.push(' ');
        }
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn newline(out: &mut String, at_line_start: &mut bool) {
    if !*at_line_start {
        out.push('\n');
        *at_line_start = true;
    }
}

fn push_line_break(out: &mut String, at_line_start: &mut bool, quote_depth: usize) {
    if *at_line_start && quote_depth > 0 {
        for _ in 0..quote_depth.min(MAX_QUOTE_MARKS) {
            out.push_str("> ");
        }
    }
    out.push('\n');
    *at_line_start = true;
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let end = rest.bytes().take(12).position(|b| b == b';');
        let Some(end) = end else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_quotes() {
        let t = html_to_text("<p>Hi &amp; bye</p><blockquote><p>old<br>text</p></blockquote>");
        assert_eq!(t, "Hi & bye\n> old\n> text");
        assert!(
            !sanitize_html("<img src=x onerror=alert(1)><script>x</script>").contains("onerror")
        );
    }

    #[test]
    fn unclosed_tag_before_a_wide_character() {
        assert_eq!(html_to_text("text <b:ì"), "text");
    }

    #[test]
    fn deep_quotes_stay_linear() {
        let depth = 30_000;
        let html = format!(
            "{}{}{}",
            "<blockquote>".repeat(depth),
            "line<br>".repeat(depth),
            "</blockquote>".repeat(depth)
        );
        let text = html_to_text(&html);
        assert!(text.len() < 20 * html.len() / 10, "{} bytes", text.len());
        assert!(text.lines().all(|l| l.starts_with("> ")));
    }
}
