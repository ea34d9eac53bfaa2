//! Scores quote stripping on every corpus folder of `../shared/corpora` that has expected
//! output, prints the pass rate per folder, and fails if a folder drops below its floor.
//! `STRIP_FAILURES=folder` prints that folder's failing cases.

use postdesk_threading::{html_to_text, new_text, strip_reply, strip_signature};
use std::path::{Path, PathBuf};

/// Pass-rate floors (percent) reached on this code; raise them when stripping improves.
const FLOORS: &[(&str, f64)] = &[
    ("discourse-email-reply-trimmer/cases", 90.6),
    ("discourse-email-reply-trimmer/embedded", 80.0),
    ("email-reply-parser-family/cases", 92.4),
    ("talon/plain", 88.2),
    ("talon/signature", 84.2),
    ("talon/signature_stripped", 83.3),
    ("talon/standard_replies", 83.3),
    ("talon/html_inline", 73.3),
    ("talon/html_files", 90.9),
    ("crisp-email-forward-parser/cases", 99.4),
];

fn corpora() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora");
    assert!(
        dir.is_dir(),
        "corpora not found at {} (../shared must sit beside the repository)",
        dir.display()
    );
    dir
}

fn norm(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |p| p + 1);
    lines[start..end].join("\n")
}

fn no_space(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn read(p: &Path) -> Option<String> {
    std::fs::read(p)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Cases of a folder: (name, produced, accepted answers, whitespace-insensitive).
fn cases(folder: &str, dir: &Path) -> Vec<(String, String, Vec<String>, bool)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in &names {
        let (stem, kind) = if let Some(s) = n.strip_suffix(".input.txt") {
            (s, "txt")
        } else if let Some(s) = n.strip_suffix(".input.html") {
            (s, "html")
        } else if let Some(s) = n.strip_suffix(".eml") {
            (s, "eml")
        } else {
            continue;
        };
        let expected_name = if folder.ends_with("embedded") {
            format!("{stem}.before.txt")
        } else {
            format!("{stem}.expected.txt")
        };
        let Some(expected) = read(&dir.join(&expected_name)) else {
            continue;
        };
        let Some(input) = read(&dir.join(n)) else {
            continue;
        };
        let mut accepted = vec![expected];
        if let Some(alt) = read(&dir.join(format!("{stem}.expected_alt.txt"))) {
            accepted.push(alt);
        }
        let (produced, loose) = match kind {
            "html" => (strip_reply(&html_to_text(&input)), true),
            "eml" => {
                let raw = std::fs::read(dir.join(n)).unwrap_or_default();
                let msg = mail_parser::MessageParser::default().parse(&raw[..]);
                let body = msg
                    .as_ref()
                    .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
                    .unwrap_or_default();
                (strip_reply(&body), false)
            }
            // crisp's expectation is the text written above a forward (empty for a bare
            // forward); the other sources expect what a reader is shown.
            _ if folder.starts_with("crisp") => (new_text(&input), false),
            // The sender's name, where a case gives it, lets the signature go too.
            _ => {
                let sender = read(&dir.join(format!("{stem}.sender.txt"))).unwrap_or_default();
                (strip_signature(&strip_reply(&input), sender.trim()), false)
            }
        };
        out.push((stem.to_string(), produced, accepted, loose));
    }
    out
}

#[test]
fn quote_stripping_scores() {
    let root = corpora();
    let show = std::env::var("STRIP_FAILURES").unwrap_or_default();
    let mut below = Vec::new();
    println!("quote stripping pass rate per folder:");
    for (folder, floor) in FLOORS {
        let list = cases(folder, &root.join(folder));
        assert!(!list.is_empty(), "{folder}: no scored cases found");
        let mut pass = 0;
        for (name, produced, accepted, loose) in &list {
            let ok = accepted.iter().any(|e| {
                if *loose {
                    no_space(produced) == no_space(e)
                } else {
                    norm(produced) == norm(e)
                }
            });
            if ok {
                pass += 1;
            } else if show == *folder || show == "all" {
                println!(
                    "---- FAIL {folder}/{name}\n--- got:\n{}\n--- want:\n{}",
                    norm(produced),
                    norm(&accepted[0])
                );
            }
        }
        let rate = 100.0 * pass as f64 / list.len() as f64;
        println!("  {folder:45} {pass:4}/{:<4} {rate:5.1}%", list.len());
        if rate + 1e-9 < *floor {
            below.push(format!("{folder}: {rate:.1}% < floor {floor}%"));
        }
    }
    assert!(below.is_empty(), "stripping regressed: {below:?}");
}
