//! Quote and signature stripping: the new text of a reply, without the quoted history,
//! attribution lines ("On … wrote:"), forwarded headers, signatures and mobile footers.

use regex::Regex;
use std::sync::LazyLock;

/// "On <date>, <name> wrote:" and its translations; may span up to three lines.
static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?is)^\s*[>\s]*(",
        r"(on|am|le|el|il|op|em|den|på|på|w dniu|dne|dňa|el día|в|у|op|pe|на|kello|\d{1,4}[./-]).{0,250}?",
        r"(wrote|schrieb|a écrit|escribió|ha escrit|ha scritto|schreef|escreveu|skrev|skriver|napisał|pisze|napísal|napsal|написал|написала|написав|написал\(а\)|kirjoitti|írta|wrote on|scrisse|a scris|yazdı|kirjutas|rakstīja|parašė|написа|έγραψε|kirjoitti|escrigué|va escriure)",
        r"[^\n]{0,80}:\s*$",
        r"|.{0,200}<[^>\s]+@[^>\s]+>\s*(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|skrev)\s*:?\s*$",
        r"|.{0,200}\d{1,2}:\d{2}.{0,120}(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|skrev|napisał|написал)\s*:?\s*$",
        r"|\d{4}[/.-]\d{1,2}[/.-]\d{1,2}.{0,150}(<[^>]+@[^>]+>|\S+@\S+).{0,30}$",
        r"|.{0,150}(님이 작성|작성:|のメッセージ:|が書きました|写道|寫道|來信|написал\(а\):).{0,40}$",
        r"|-{2,}\s*on .{0,200}wrote\s*-{2,}",
        r"|.{0,150}\d{4}.{0,150}(wrote|schrieb|a écrit|escribió|ha scritto|schreef|escreveu|skrev|napisał|написал|написала)\s*:\s*$",
        r")"
    ))
    .expect("attribution pattern")
});

/// "-----Original Message-----" and friends, forwarded-message banners.
static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^\s*[>\s]*(",
        // any short phrase between dashes: "-----Original Message-----", "---------- Forwarded
        // message ---------" and their translations, Yahoo's one-line "----- X ----- From: …"
        r"\*?-{2,}\s*[^-\s][^-]{1,60}?\s*-{2,}\*?.*",
        r"|begin forwarded message:?",
        r"|forwarded message:?",
        r"|début du message réexpédié\s*:?",
        r"|anfang der weitergeleiteten nachricht\s*:?",
        r"|inicio del mensaje reenviado\s*:?",
        r"|_{20,}",
        r"|-{20,}",
        r"|={20,}",
        r")\s*$"
    ))
    .expect("separator pattern")
});

/// A forwarded/quoted header line: "From: …" in the languages Outlook and others use.
static FROM_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*[>\s]*\*?\s*(from|von|de|da|van|fra|från|od|от|від|lähettäjä|feladó|šalje|kimden|de la|від кого|発信者|差出人|发件人|寄件者|보낸 사람|gönderen|afzender|avsändare|nadawca)\s*\*?\s*[:：]").expect("from header")
});

/// A From line carrying the rest of its header block ("From: a@b Date: … Subject: …").
static INLINE_HEADERS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\s(date|sent|to|subject|datum|gesendet|envoyé|enviado)\s*[:：]\s*\S")
        .expect("inline headers")
});

/// Other header names of a quoted header block.
static OTHER_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*[>\s]*\*?\s*(sent|date|to|subject|cc|bcc|reply-to|gesendet|datum|an|betreff|envoyé|date|à|objet|enviado|fecha|para|asunto|inviato|data|a|oggetto|verzonden|aan|onderwerp|sendt|til|emne|skickat|till|ämne|wysłano|do|temat|отправлено|дата|кому|тема|lähetetty|päivämäärä|vastaanottaja|aihe|elküldve|dátum|címzett|tárgy|poslano|prima|predmet|odesláno|komu|předmět|trimis|către|subiect|tarih|kime|konu|enviada|assunto|cc|kopie|kopia|копия|送信日時|宛先|件名|发送时间|收件人|主题|日期|寄件日期|收件者|主旨|날짜|받는 사람|제목|gönderildi|verstuurd)\s*\*?\s*[:：]").expect("other header")
});

/// Mobile and webmail footers that are not part of the message.
static FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^\s*(",
        r"sent (from|with|via|using) [^,]{0,80}(, please .*)?",
        r"|sent from my .*",
        r"|gesendet von .*",
        r"|envoyé à partir de .*",
        r"|ᐧ",
        r"|get outlook for .*",
        r"|get \[outlook for .*",
        r"|from my (iphone|ipad|android|mobile|phone|samsung|blackberry).*",
        r"|envoyé (de|depuis) (mon|ma) .*",
        r"|von meinem .* gesendet.*",
        r"|gesendet von meinem .*",
        r"|diese nachricht wurde von meinem .* gesendet\.?",
        r"|enviado (desde|de) mi .*",
        r"|inviato da(l mio)? .*",
        r"|verzonden (vanaf|met) .*",
        r"|skickat från min .*",
        r"|sendt fra min .*",
        r"|wysłane z .*",
        r"|отправлено с .*",
        r"|從我的 .* 傳送",
        r"|<<sent by .*>>",
        r"|\(sent from .*\)",
        r"|someone from mobile",
        r")\s*$"
    ))
    .expect("footer pattern")
});

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// A one-word sign-off after a dash ("-roman", "- Lev."), as the last line.
static DASH_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*-\s?\p{L}[\p{L}.]{0,19}\s*$").expect("dash name"));

fn is_underscore_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 2 && t.chars().all(|c| c == '_')
}

fn is_blank(line: &str) -> bool {
    line.chars().all(|c| {
        c.is_whitespace() || matches!(c, '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{feff}' | 'ᐧ')
    })
}

/// Whether an Outlook-style header block ("From: … / Sent: … / To: … / Subject: …") starts at `i`.
fn header_block_at(lines: &[&str], i: usize) -> bool {
    if !has_colon(lines[i]) || !FROM_HEADER.is_match(lines[i]) {
        return false;
    }
    let others = lines[i + 1..]
        .iter()
        .take(7)
        .filter(|l| has_colon(l) && OTHER_HEADER.is_match(l))
        .count();
    let next_is_header = lines.get(i + 1).is_some_and(|l| OTHER_HEADER.is_match(l));
    others >= 2
        || (others == 1 && next_is_header && lines[i].contains('@'))
        // HTML mail turned to text may put the whole block on one line.
        || (lines[i].contains('@') && INLINE_HEADERS.is_match(lines[i]))
}

/// A header block that begins with Date/Sent/To/Subject and has a From further down.
fn reversed_header_block_at(lines: &[&str], i: usize) -> bool {
    if !has_colon(lines[i]) || !OTHER_HEADER.is_match(lines[i]) {
        return false;
    }
    let block: Vec<&&str> = lines[i..]
        .iter()
        .take(6)
        .take_while(|l| !is_blank(l))
        .collect();
    block.len() >= 2
        && block.iter().any(|l| l.contains('@'))
        && block
            .iter()
            .all(|l| FROM_HEADER.is_match(l) || OTHER_HEADER.is_match(l))
}

/// A short line with an address and a number that ends in a colon, as many clients
/// write their attribution ("30.09.2017, 18.30, "John" <j@x.test>:").
static GENERIC_ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[^>].{0,200}(<[^>\s]+@[^>\s]+>|\S+@\S+\.\w+).{0,60}[:：]\s*$")
        .expect("generic attribution")
});

/// How an attribution's first line begins ("On …", "Am …", a date, an address).
static ATTRIBUTION_OPENER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[>\s]*(on|am|le|el|il|op|em|den|på|w dniu|dne|dňa|pe|в|у|на|kello|\d)\b|@")
        .expect("attribution opener")
});

fn is_attribution_text(text: &str) -> bool {
    if !may_be_attribution(text) {
        return false;
    }
    ATTRIBUTION.is_match(text)
        || (GENERIC_ATTRIBUTION.is_match(text)
            && text.chars().any(|c| c.is_ascii_digit())
            && !FROM_HEADER.is_match(text)
            && !OTHER_HEADER.is_match(text))
}

/// The attribution line(s) starting at `i`: how many lines they span, if any.
fn attribution_at(lines: &[&str], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    if first.is_empty() {
        return None;
    }
    // Joined lines can only pass if one of them could (most body lines cannot).
    if !lines[i..].iter().take(3).any(|l| may_be_attribution(l)) {
        return None;
    }
    let mut joined = String::new();
    for span in 1..=3 {
        let Some(l) = lines.get(i + span - 1) else {
            break;
        };
        if span > 1 {
            if is_blank(l) {
                break;
            }
            joined.push(' ');
        }
        joined.push_str(l.trim());
        if joined.len() > 400 {
            break;
        }
        if is_attribution_text(&joined) {
            // If the lines after the first already form the attribution, it starts there.
            if span > 1 && !ATTRIBUTION_OPENER.is_match(first) {
                let later: Vec<&str> = lines[i + 1..i + span].iter().map(|l| l.trim()).collect();
                if is_attribution_text(&later.join(" ")) {
                    return None;
                }
            }
            return Some(span);
        }
    }
    None
}

/// For each line, whether from it on there are only quoted, blank or footer lines (up to a
/// mailing-list footer's underscore rule); one more entry, `true`, past the end. It depends
/// only on the lines from `i` on, so one computation serves every part of the body.
fn quoted_to_end(lines: &[&str]) -> Vec<bool> {
    let mut quoted_to_end = vec![true; lines.len() + 1];
    for i in (0..lines.len()).rev() {
        let l = lines[i];
        quoted_to_end[i] = if is_underscore_rule(l) {
            true
        } else {
            (is_quoted(l) || is_blank(l) || is_footer(l)) && quoted_to_end[i + 1]
        };
    }
    quoted_to_end
}

/// Where the quoted part of `lines[from..]` begins, if anywhere, and how many lines its
/// header spans. Every test looks at a bounded number of lines from the one it is at, so a
/// scan is linear in the lines it passes; `quoted_to_end` comes from [`quoted_to_end`].
fn find_cut(lines: &[&str], from: usize, quoted_to_end: &[bool]) -> Option<(usize, usize)> {
    // Whether a line with text lies between `from` and the line looked at.
    let mut text_above = false;
    for i in from..lines.len() {
        let line = lines[i];
        if may_be_separator(line) && SEPARATOR.is_match(line) {
            // A long rule only counts when a header block follows it.
            let t = line.trim();
            let is_rule = t
                .chars()
                .all(|c| c == '_' || c == '-' || c == '=' || c == '>' || c == ' ');
            if !is_rule
                || lines[i + 1..]
                    .iter()
                    .take(3)
                    .position(|l| !is_blank(l))
                    .is_some_and(|p| {
                        let j = i + 1 + p;
                        header_block_at(lines, j) || reversed_header_block_at(lines, j)
                    })
            {
                return Some((i, 1));
            }
        }
        if let Some(span) = attribution_at(lines, i) {
            return Some((i, span));
        }
        if header_block_at(lines, i) || reversed_header_block_at(lines, i) {
            return Some((i, 1));
        }
        // A mobile footer with text above ends the reply; what follows is the old mail.
        if is_footer(line) && text_above {
            return Some((i, 1));
        }
        if is_quoted(line) && quoted_to_end[i] {
            return Some((i, 0));
        }
        text_above |= !is_blank(line);
    }
    None
}

/// [`find_cut`] over a whole body.
fn first_cut(lines: &[&str]) -> Option<(usize, usize)> {
    find_cut(lines, 0, &quoted_to_end(lines))
}

/// Cheap tests that rule lines out before the regexes run (most lines of a body).
fn has_colon(s: &str) -> bool {
    s.contains([':', '：'])
}

fn may_be_separator(line: &str) -> bool {
    line.contains(['-', '_', '=', ':']) || line.trim().len() <= 40
}

/// An attribution has a colon (or '：'), an address or a date dash, or is written in a
/// script at or above U+3000 (CJK), whose UTF-8 lead bytes are 0xE3 and up: one pass over
/// the bytes, as this runs for every line of every body.
fn may_be_attribution(text: &str) -> bool {
    text.bytes()
        .any(|b| matches!(b, b':' | b'@' | b'-') || b >= 0xE3)
}

fn is_footer(line: &str) -> bool {
    line.len() <= 160 && FOOTER.is_match(line)
}

/// Cuts a trailing signature ("-- " delimiter) and mobile footers off `lines`.
fn drop_signature(lines: &mut Vec<&str>) {
    // nonblank_from[i]: lines with text from line i on; counted once, backwards, so the
    // search below stays linear however many delimiter-like lines a body has.
    let mut nonblank_from = vec![0usize; lines.len() + 1];
    for i in (0..lines.len()).rev() {
        nonblank_from[i] = nonblank_from[i + 1] + usize::from(!is_blank(lines[i]));
    }
    // The first delimiter with only a signature-sized tail after it ("-- ", "---", "__").
    let delimiter = lines.iter().enumerate().position(|(i, l)| {
        let t = l.trim_end();
        let tail = nonblank_from[i + 1];
        i > 0 && (((t == "--" || is_underscore_rule(t)) && tail <= 12) || (t == "---" && tail <= 3))
    });
    if let Some(pos) = delimiter {
        lines.truncate(pos);
    }
    loop {
        while lines.last().is_some_and(|l| is_blank(l)) {
            lines.pop();
        }
        match lines.last() {
            Some(l) if (is_footer(l) || DASH_NAME.is_match(l)) && lines.len() > 1 => {
                lines.pop();
            }
            _ => break,
        }
    }
}

/// Forward banners: what follows them is content the sender passes on, not history.
static FORWARD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(forward|weitergeleitet|transféré|transmis|réexpédié|reenviado|inoltrato|doorgestuurd|videresend|vidarebefordra|välitetty|edelleenlähetetty|przekazan|přeposlan|preposlan|encaminhad|пересыла|перенаправлен|переслан|továbbított|proslijeđen|redirecționat|iletilen|iletilmiş|転送|转发|轉寄)").expect("forward pattern")
});

/// The lines of the new text, or `None` when the body holds nothing new (a bare forward
/// or quote). Text above the first quote header is new; a '>'-quoted block after a header
/// is skipped and text below it is new too (bottom-posting and inline answers), while an
/// unquoted block after a header is old mail and ends the new text.
///
/// A loop, not recursion: a body of thousands of quote blocks must neither grow the stack
/// nor be scanned again from each block (each part is looked at once).
fn new_lines<'a>(all: &[&'a str]) -> Option<Vec<&'a str>> {
    let quoted = quoted_to_end(all);
    // Short greetings above a quote ("Hi,", a bottom-post), outermost first: each may
    // join the answer found below it.
    let mut greetings: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    let innermost: Option<std::ops::Range<usize>> = loop {
        let Some((cut, span)) = find_cut(all, start, &quoted) else {
            break Some(start..all.len());
        };
        let above = &all[start..cut];
        let has_above = above.iter().any(|l| !is_blank(l));
        let mut j = cut + span;
        let quote_start = j;
        while j < all.len() && (is_quoted(all[j]) || is_blank(all[j])) {
            j += 1;
        }
        let skipped_quote = all[quote_start..j].iter().any(|l| is_quoted(l));
        // A short greeting above a quote ("Hi,") is a bottom-post: the answer is below.
        let greeting_only = above.iter().filter(|l| !is_blank(l)).count() <= 1
            && above.iter().map(|l| l.trim().len()).sum::<usize>() <= 20;
        if has_above && !(greeting_only && skipped_quote && j < all.len()) {
            break Some(start..cut);
        }
        if skipped_quote && j < all.len() {
            if has_above {
                greetings.push(start..cut);
            }
            start = j;
            continue;
        }
        break None;
    };
    // Unwind from the innermost part outwards: a greeting keeps what was found below it
    // only when that holds at least two lines of text.
    let nonblank =
        |r: &std::ops::Range<usize>| all[r.clone()].iter().filter(|l| !is_blank(l)).count();
    let mut parts: Vec<std::ops::Range<usize>> = innermost.into_iter().collect();
    let mut text_lines = parts.first().map_or(0, nonblank);
    let mut found = !parts.is_empty();
    for greeting in greetings.into_iter().rev() {
        let n = nonblank(&greeting);
        if !found || text_lines < 2 {
            parts.clear();
            text_lines = 0;
        }
        parts.push(greeting);
        text_lines += n;
        found = true;
    }
    found.then(|| {
        parts
            .iter()
            .rev()
            .flat_map(|r| all[r.clone()].iter().copied())
            .collect()
    })
}

/// The body of a bare forward: the lines after its banner and header block.
fn forwarded_body<'a>(all: &[&'a str]) -> Vec<&'a str> {
    let Some((cut, span)) = first_cut(all) else {
        return all.to_vec();
    };
    let mut j = cut + span;
    while j < all.len() && is_blank(all[j]) {
        j += 1;
    }
    // The header block runs to the first blank line.
    while j < all.len() && !is_blank(all[j]) {
        j += 1;
    }
    let body = &all[j.min(all.len())..];
    if body.iter().all(|l| is_blank(l)) {
        all.to_vec()
    } else {
        new_lines(body).unwrap_or_else(|| body.to_vec())
    }
}

/// Whether the body's first quote header is a forward banner.
fn is_forward(all: &[&str]) -> bool {
    first_cut(all).is_some_and(|(cut, _)| FORWARD.is_match(all[cut]))
}

fn finish(mut lines: Vec<&str>) -> String {
    drop_signature(&mut lines);
    let out: Vec<&str> = lines
        .iter()
        .map(|l| if is_blank(l) { "" } else { l.trim_end() })
        .collect();
    let start = out.iter().position(|l| !l.is_empty()).unwrap_or(out.len());
    let end = out
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |p| p + 1);
    out[start..end].join("\n")
}

/// "On … wrote:" that some clients append to the last line of the reply itself.
static TRAILING_ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(.*?\S)[\s-]*(on\s+\w{3},?\s.{5,200}\swrote:)\s*$")
        .expect("trailing attribution")
});

/// Line endings unified, and an attribution sharing a line with the reply moved to its own.
fn normalize(body: &str) -> String {
    let text = body.replace("\r\n", "\n").replace('\r', "\n");
    if !text.contains("wrote:") {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        match TRAILING_ATTRIBUTION.captures(bare) {
            Some(c) if !is_quoted(bare) => {
                out.push_str(&c[1]);
                out.push('\n');
                out.push_str(&c[2]);
                if line.ends_with('\n') {
                    out.push('\n');
                }
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// Only the text the sender wrote above a quote or forward; empty when they wrote nothing.
pub fn new_text(body: &str) -> String {
    let text = normalize(body);
    let all: Vec<&str> = text.lines().collect();
    new_lines(&all).map(finish).unwrap_or_default()
}

/// The text a ticket shows for a message: the new text of a reply, or, when the sender
/// wrote nothing above a forward or quote, the whole body so the ticket still shows what
/// was sent.
pub fn strip_reply(body: &str) -> String {
    let text = normalize(body);
    let all: Vec<&str> = text.lines().collect();
    match new_lines(&all) {
        Some(lines) => finish(lines),
        // A bare forward: what is forwarded is the substance of the ticket.
        None if is_forward(&all) => finish(forwarded_body(&all)),
        None => finish(all),
    }
}

/// Sign-off words that open a closing block.
static SIGN_OFF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(thanks|thank you|many thanks|regards|best|kind regards|best regards|cheers|sincerely|greetings|gruß|grüße|merci|cordialement|saludos|groeten|mvh|pozdrawiam)\b")
        .expect("sign-off")
});

/// Removes a closing block that signs with the sender's name ("Thank you,\nNoam",
/// "Gina X\ngina@example.com\n(555) 346-9947"): the last paragraph, when it is short and
/// names the sender. Without a name nothing is removed, so free-form text is never lost.
pub fn strip_signature(text: &str, sender_name: &str) -> String {
    let names: Vec<String> = sender_name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect();
    if names.is_empty() {
        return text.to_string();
    }
    let lines: Vec<&str> = text.lines().collect();
    let Some(last_blank) = lines.iter().rposition(|l| is_blank(l)) else {
        return text.to_string();
    };
    let block = &lines[last_blank + 1..];
    let names_sender = |l: &str| {
        let lower = l.to_lowercase();
        lower
            .split(|c: char| !c.is_alphanumeric())
            .any(|w| names.iter().any(|n| n == w))
    };
    let is_signature = !block.is_empty()
        && block.len() <= 6
        && block.iter().all(|l| l.chars().count() <= 60)
        && lines[..last_blank].iter().any(|l| !is_blank(l))
        && (names_sender(block[0])
            || (SIGN_OFF.is_match(block[0]) && block.iter().take(3).any(|l| names_sender(l))));
    if !is_signature {
        return text.to_string();
    }
    let kept = &lines[..last_blank];
    let end = kept.iter().rposition(|l| !is_blank(l)).map_or(0, |p| p + 1);
    kept[..end].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_reply() {
        let s = "Thanks, works now.\n\nOn Mon, 1 Jan 2024 at 10:00, Support <s@x.test> wrote:\n> old\n> text\n";
        assert_eq!(strip_reply(s), "Thanks, works now.");
    }

    #[test]
    fn signature_and_footer() {
        assert_eq!(strip_reply("Hi\n\n-- \nBob\nACME"), "Hi");
        assert_eq!(strip_reply("Hi\n\nSent from my iPhone"), "Hi");
    }

    #[test]
    fn signature_needs_the_senders_name() {
        let text = "It works.\n\nThank you,\nNoam";
        assert_eq!(strip_signature(text, "Noam Levi"), "It works.");
        assert_eq!(strip_signature(text, ""), text);
        assert_eq!(strip_signature(text, "Someone Else"), text);
        assert_eq!(
            strip_signature("Noam", "Noam"),
            "Noam",
            "never the whole text"
        );
    }

    #[test]
    fn attribution_on_the_reply_line() {
        let s = "reply On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:\n> Hi";
        assert_eq!(strip_reply(s), "reply");
    }

    #[test]
    fn header_block_on_one_line() {
        let s = "Reply\n____\nFrom: bob@example.com Date: Thu, 24 Mar 2016 08:07:12 -0700\nQuoted message";
        assert_eq!(strip_reply(s), "Reply");
    }

    #[test]
    fn outlook_block() {
        let s =
            "Yes.\n\nFrom: Support <s@x.test>\nSent: Monday\nTo: bob@x.test\nSubject: Re: x\n\nold";
        assert_eq!(strip_reply(s), "Yes.");
    }
}
