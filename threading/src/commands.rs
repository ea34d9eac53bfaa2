//! Staff mail commands: `#status`, `#assign`, `#priority`, `#due` and `#note` lines at the
//! top of a staff reply. Parsing only; the pipeline decides whether the sender may use them.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// open, waiting, resolved or closed.
    Status(String),
    /// A staff address, or `None` for "me" (the sender).
    Assign(Option<String>),
    /// low, normal, high or urgent.
    Priority(String),
    /// `YYYY-MM-DD`.
    Due(String),
    /// The whole reply is an internal note.
    Note,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedCommands {
    pub commands: Vec<Command>,
    /// One line per command not understood, saying why.
    pub errors: Vec<String>,
    /// The text after the command lines.
    pub text: String,
}

/// Whether `d` is a real calendar date written `YYYY-MM-DD` (due dates).
pub fn valid_date(d: &str) -> bool {
    let parts: Vec<&str> = d.split('-').collect();
    let [y, m, day] = parts.as_slice() else {
        return false;
    };
    let (Ok(y), Ok(m), Ok(day)) = (y.parse::<u32>(), m.parse::<u32>(), day.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    d.len() == 10 && (2000..=2999).contains(&y) && (1..=days).contains(&day)
}

fn parse_line(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or("").to_ascii_lowercase();
    let arg = words.next().map(str::to_ascii_lowercase);
    let extra = words.next().is_some();
    let one = |allowed: &[&str], what: &str| -> Result<String, String> {
        match &arg {
            Some(a) if allowed.contains(&a.as_str()) && !extra => Ok(a.clone()),
            _ => Err(format!(
                "{line}: {what} must be one of {}",
                allowed.join(", ")
            )),
        }
    };
    match name.as_str() {
        "#status" => {
            one(&["open", "waiting", "resolved", "closed"], "the status").map(Command::Status)
        }
        "#priority" => {
            one(&["low", "normal", "high", "urgent"], "the priority").map(Command::Priority)
        }
        "#assign" => match (&arg, extra) {
            (Some(a), false) if a == "me" => Ok(Command::Assign(None)),
            (Some(a), false) if a.contains('@') && !a.starts_with('@') && !a.ends_with('@') => Ok(
                Command::Assign(Some(a.trim_matches(['<', '>']).to_string())),
            ),
            _ => Err(format!(
                "{line}: give a staff member's email address or \"me\""
            )),
        },
        "#due" => match (&arg, extra) {
            (Some(d), false) if valid_date(d) => Ok(Command::Due(d.clone())),
            _ => Err(format!("{line}: the date must be YYYY-MM-DD")),
        },
        "#note" if arg.is_none() => Ok(Command::Note),
        "#note" => Err(format!("{line}: #note takes nothing after it")),
        _ => Err(format!(
            "{line}: unknown command (use #status, #assign, #priority, #due or #note)"
        )),
    }
}

/// Splits the command lines at the top of `text` from the rest. A line counts as a command
/// when it starts with `#` and a letter (so "#42" is text).
pub fn parse_commands(text: &str) -> ParsedCommands {
    let mut out = ParsedCommands::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() && lines[i].trim().is_empty() {
        i += 1;
    }
    while i < lines.len() {
        let line = lines[i].trim();
        let is_command = line.starts_with('#')
            && line[1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic());
        if !is_command {
            break;
        }
        match parse_line(line) {
            Ok(c) => out.commands.push(c),
            Err(e) => out.errors.push(e),
        }
        i += 1;
    }
    out.text = lines[i..].join("\n").trim().to_string();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_then_text() {
        let p = parse_commands("\n#status resolved\n#Priority HIGH\n#assign me\n#due 2026-12-01\nFixed it.\n#status open");
        assert_eq!(
            p.commands,
            vec![
                Command::Status("resolved".into()),
                Command::Priority("high".into()),
                Command::Assign(None),
                Command::Due("2026-12-01".into()),
            ]
        );
        assert!(p.errors.is_empty());
        assert_eq!(p.text, "Fixed it.\n#status open");
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let p =
            parse_commands("#status maybe\n#due 2026-02-30\n#assign\n#frobnicate\n#note now\ntext");
        assert_eq!(p.errors.len(), 5, "{:?}", p.errors);
        assert!(p.errors[0].contains("open, waiting, resolved, closed"));
        assert!(p.errors[1].contains("YYYY-MM-DD"));
        assert!(p.commands.is_empty());
    }

    #[test]
    fn hash_numbers_and_plain_text_are_not_commands() {
        let p = parse_commands("#42 is the ticket\n#status closed");
        assert!(p.commands.is_empty() && p.errors.is_empty());
        assert_eq!(
            parse_commands("#note\nsecret").commands,
            vec![Command::Note]
        );
        assert_eq!(
            parse_commands("#assign <a@b.test>").commands,
            vec![Command::Assign(Some("a@b.test".into()))]
        );
    }
}
