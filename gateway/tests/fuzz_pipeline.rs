//! Property-based fuzzing of parse -> classify -> thread -> strip -> commit: corpus messages
//! from `../shared/corpora` with random byte edits, truncations and header splices go
//! through the spool and the pipeline. Nothing may panic (the pipeline would record a
//! parser failure), and every message must end with a decision.
//! Smoke run in the test suite; longer: `PROPTEST_CASES=5000 cargo test --release -p
//! postdesk-gateway --test fuzz_pipeline`.

mod common;

use postdesk_store::Outcome;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("corpus folder").flatten() {
            let p: PathBuf = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "eml") {
                out.push(std::fs::read(&p).expect("corpus file"));
            }
        }
    }
    assert!(out.len() > 150, "corpus seeds missing");
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Truncate(usize),
    Splice(usize, &'static str),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n",
                "\r\n--x\r\n",
                "\r\nContent-Transfer-Encoding: base64\r\n",
                "\r\nIn-Reply-To: <a@b> <c@d>\r\n",
                "\r\nSubject: =?utf-8?B?////?=\r\n",
                "\r\nContent-Type: message/rfc822\r\n\r\n",
                "\r\nAuto-Submitted: auto-replied\r\n",
                "\u{0}\u{ff}",
            ])
        )
            .prop_map(|(i, s)| Edit::Splice(i, s)),
    ]
}

fn apply(mut raw: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = raw.len().max(1);
        match e {
            Edit::Flip(i, b) => {
                if !raw.is_empty() {
                    raw[i % len] = *b;
                }
            }
            Edit::Truncate(i) => raw.truncate(i % len),
            Edit::Splice(i, s) => {
                let at = i % len.min(raw.len() + 1);
                raw.splice(at..at, s.bytes());
            }
        }
    }
    raw
}

#[test]
fn mutated_corpus_messages_go_through_the_pipeline() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let seeds = seeds();
    let (store, dir) = common::store_with_org("fuzz-pipeline", "fuzz");
    let pipeline = std::cell::RefCell::new(
        postdesk_gateway::Processor::new(store.clone(), None, postdesk_gateway::DEFAULT_BUDGET)
            .expect("pipeline"),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let strategy = (0..seeds.len(), prop::collection::vec(edit(), 0..6));
    let result = runner.run(&strategy, |(seed, edits)| {
        let raw = apply(seeds[seed].clone(), &edits);
        let envelope = common::envelope("fuzz");
        let ids = store
            .spool_batch(&[(&envelope, raw.as_slice())])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        pipeline
            .borrow_mut()
            .process_pending()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(store
            .pending_inbound()
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .is_empty());
        let decisions = store
            .decisions(1)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = decisions
            .first()
            .ok_or_else(|| TestCaseError::fail("no decision"))?;
        prop_assert_eq!(d.inbound, ids[0]);
        if let Outcome::Refused { reason } = &d.outcome {
            prop_assert!(
                !reason.contains("parser failure"),
                "panic inside the pipeline"
            );
        }
        Ok(())
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("fuzz_pipeline: {cases} mutated corpus messages, no panic");
}
