//! Every MIME message of `../shared/corpora` (single files and mbox members) goes through
//! the spool and the pipeline without a panic, and each ends with a recorded decision.

mod common;

use postdesk_store::{Envelope, Outcome};
use std::path::{Path, PathBuf};

fn corpora() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora");
    assert!(dir.is_dir(), "corpora not found at {}", dir.display());
    dir
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable corpus folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Splits an mbox at its "From " separator lines.
fn mbox_members(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            out.push(Vec::new());
        } else if let Some(cur) = out.last_mut() {
            cur.extend_from_slice(line);
        }
    }
    out
}

fn messages() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    walk(&corpora(), &mut files);
    let mut out = Vec::new();
    for p in files {
        let name = p.to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).expect("readable corpus file");
        if name.ends_with(".mbox.txt") {
            for (i, m) in mbox_members(&bytes).into_iter().enumerate() {
                out.push((format!("{name}#{i}"), m));
            }
        } else if name.ends_with(".eml")
            || (name.contains("mimekit/messages/") && name.ends_with(".txt"))
        {
            out.push((name, bytes));
        }
    }
    out
}

#[test]
fn every_corpus_message_goes_through_the_pipeline() {
    let (store, dir) = common::store_with_org("corpus", "corpus");
    let msgs = messages();
    assert!(
        msgs.len() > 200,
        "expected the whole corpus, found {}",
        msgs.len()
    );
    let envelope = common::envelope("corpus");
    let batch: Vec<(&Envelope, &[u8])> = msgs
        .iter()
        .map(|(_, raw)| (&envelope, raw.as_slice()))
        .collect();
    let ids = store.spool_batch(&batch).expect("spooled");
    let processed =
        postdesk_gateway::Processor::new(store.clone(), None, postdesk_gateway::DEFAULT_BUDGET)
            .expect("pipeline")
            .process_pending()
            .expect("pipeline");
    assert_eq!(processed, msgs.len());
    assert!(store.pending_inbound().expect("pending").is_empty());
    let decisions = store.decisions(100_000).expect("decisions");
    for id in &ids {
        assert!(
            decisions.iter().any(|d| d.inbound == *id),
            "no decision for {}",
            msgs[(*id - ids[0]) as usize].0
        );
    }
    let failures: Vec<_> = decisions
        .iter()
        .filter(|d| matches!(&d.outcome, Outcome::Refused { reason } if reason.contains("parser failure")))
        .map(|d| msgs[(d.inbound - ids[0]) as usize].0.clone())
        .collect();
    assert!(failures.is_empty(), "the parser failed on {failures:?}");
    // Running the pipeline again changes nothing: it is idempotent.
    assert_eq!(
        postdesk_gateway::Processor::new(store.clone(), None, postdesk_gateway::DEFAULT_BUDGET)
            .expect("pipeline")
            .process_pending()
            .expect("again"),
        0
    );
    let tickets = store.tickets(&Default::default()).expect("tickets").len();
    println!(
        "corpus: {} messages through the pipeline, {} decisions, {tickets} tickets",
        msgs.len(),
        decisions.len()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
