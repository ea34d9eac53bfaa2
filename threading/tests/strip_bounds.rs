//! Hostile bodies against quote and signature stripping: generated bodies never panic and
//! give back only lines they were given, and shapes that made the old stripper quadratic
//! (many lines, many quote blocks, many delimiters) finish within a time budget.

use postdesk_threading::{html_to_text, new_text, strip_reply, strip_signature};
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Lines that steer the stripper: quotes, attributions, header blocks, separators,
/// signatures, footers, greetings and plain text.
const PIECES: &[&str] = &[
    "Hi,",
    "",
    " ",
    "> quoted",
    ">> deeper",
    "On Mon, 1 Jan 2024 at 10:00, Bob <b@x.test> wrote:",
    "-- ",
    "---",
    "__",
    "Sent from my iPhone",
    "From: Bob <b@x.test>",
    "Sent: Monday",
    "To: a@x.test",
    "Subject: hi",
    "-----Original Message-----",
    "---------- Forwarded message ---------",
    "Thank you,",
    "Noam",
    "a line of the answer",
    "- roman",
    "2024-01-01 bob@x.test:",
];

fn body() -> impl Strategy<Value = String> {
    prop::collection::vec(0..PIECES.len(), 0..400).prop_map(|ix| {
        ix.into_iter()
            .map(|i| PIECES[i])
            .collect::<Vec<_>>()
            .join("\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn stripping_keeps_only_given_lines(text in body()) {
        let given: std::collections::HashSet<&str> = text.lines().map(str::trim_end).collect();
        for out in [strip_reply(&text), new_text(&text), strip_signature(&strip_reply(&text), "Noam Levi")] {
            for line in out.lines() {
                prop_assert!(line.is_empty() || given.contains(line), "{line:?} was not given");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_do_not_panic(text in "\\PC{0,2000}") {
        let _ = strip_reply(&text);
        let _ = html_to_text(&text);
    }
}

/// Each hostile shape at a size where a quadratic stripper takes minutes; linear stripping
/// takes well under a second even unoptimized. The budget is generous on purpose: it is a
/// backstop against a return of quadratic work, not a speed target (those live in bench/).
#[test]
fn hostile_shapes_finish_within_a_budget() {
    let shapes: Vec<(&str, String)> = vec![
        ("200,000 short lines", "a\n".repeat(200_000)),
        ("100,000 signature delimiters", "x\n--\n".repeat(100_000)),
        (
            "30,000 greeting and quote blocks",
            "Hi\n> q\n".repeat(30_000) + "end",
        ),
        (
            "30,000 quote blocks between answers",
            "> q\nanswer\n".repeat(30_000),
        ),
        (
            "50,000 mobile footers",
            "text\n\nSent from my iPhone\n".repeat(50_000),
        ),
        ("100,000 header lines", "From: a@b.test\n".repeat(100_000)),
        ("a 30,000-deep quote", ">".repeat(30_000) + " x\n"),
    ];
    let budget = Duration::from_secs(20);
    let started = Instant::now();
    for (name, text) in &shapes {
        let t = Instant::now();
        let _ = strip_reply(text);
        let _ = new_text(text);
        println!("{name}: {:?}", t.elapsed());
    }
    let html = format!(
        "{}{}",
        "<blockquote>".repeat(30_000),
        "line<br>".repeat(30_000)
    );
    let t = Instant::now();
    let _ = strip_reply(&html_to_text(&html));
    println!("30,000 nested blockquotes: {:?}", t.elapsed());
    assert!(
        started.elapsed() < budget,
        "hostile shapes took {:?}",
        started.elapsed()
    );
}
