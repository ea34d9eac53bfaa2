//! No message holds up the pipeline: one that runs past its time budget, or that was in
//! hand each time the server died, is recorded as failed with its reason (the original is
//! kept), and the messages behind it are processed.

mod common;

use postdesk_gateway::{Pipeline, Processor};
use postdesk_store::{Decision, Envelope, Outcome, Store};
use std::time::{Duration, Instant};

fn mail(id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: someone@client.test\r\nTo: guard@test.example\r\nSubject: {id}\r\n\
         Message-ID: <{id}@client.test>\r\nDate: Tue, 01 Dec 2026 04:00:00 +0000\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// A mail carrying 24 MB of attachments: parsing, decoding and storing them takes far longer
/// than the tiny budget below, while a normal mail takes a few milliseconds.
fn heavy_mail() -> Vec<u8> {
    let chunk = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n";
    let attachment = chunk.repeat(8 * 1024 * 1024 / chunk.len());
    let mut raw = String::from(
        "From: heavy@client.test\r\nTo: guard@test.example\r\nSubject: heavy\r\n\
         Message-ID: <heavy@client.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n",
    );
    for n in 0..3 {
        raw.push_str(&format!(
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"part{n}.bin\"\r\n\r\n{attachment}"
        ));
    }
    raw.push_str("--b--\r\n");
    raw.into_bytes()
}

fn decision(store: &Store, inbound: u64) -> Decision {
    store
        .decisions(100)
        .expect("decisions")
        .into_iter()
        .find(|d| d.inbound == inbound)
        .expect("decided")
}

fn spool(store: &Store, envelope: &Envelope, raws: &[Vec<u8>]) -> Vec<u64> {
    let batch: Vec<(&Envelope, &[u8])> = raws.iter().map(|r| (envelope, r.as_slice())).collect();
    store.spool_batch(&batch).expect("spooled")
}

#[test]
fn a_message_past_its_budget_is_recorded_and_the_rest_go_on() {
    let (store, dir) = common::store_with_org("pipeline-budget", "guard");
    let envelope = common::envelope("guard");
    let ids = spool(
        &store,
        &envelope,
        &[heavy_mail(), mail("normal", "The printer jams.")],
    );
    let mut pipeline =
        Processor::new(store.clone(), None, Duration::from_millis(300)).expect("pipeline");
    let started = Instant::now();
    assert_eq!(pipeline.process_pending().expect("pass"), 2);
    println!("two messages decided in {:?}", started.elapsed());
    let heavy = decision(&store, ids[0]);
    assert!(
        matches!(&heavy.outcome, Outcome::Refused { reason } if reason.contains("longer than 0.3 s")),
        "{heavy:?}"
    );
    assert!(
        matches!(decision(&store, ids[1]).outcome, Outcome::Accepted { .. }),
        "the next message is processed by a fresh worker"
    );
    assert!(store.pending_inbound().expect("pending").is_empty());
    assert!(
        store.raw_message(ids[0]).expect("raw").is_some(),
        "the original is kept"
    );
    drop(pipeline);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

/// The server's way: the worker follows the spool's wake itself and the pipeline only
/// watches it. A message past its budget is given up on there too, a fresh worker takes the
/// wake over, and what the spool commits before it closes is processed before `run` ends.
#[test]
fn a_following_worker_is_watched_and_finishes_when_the_spool_closes() {
    let (store, dir) = common::store_with_org("pipeline-follow", "guard");
    let envelope = common::envelope("guard");
    let first = spool(
        &store,
        &envelope,
        &[heavy_mail(), mail("after-heavy", "The printer jams.")],
    );
    let (wake, wake_rx) = std::sync::mpsc::channel();
    let processor =
        Processor::new(store.clone(), None, Duration::from_millis(300)).expect("pipeline");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let running = std::thread::spawn(move || Pipeline::new(processor, wake_rx, stopped).run());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !store.pending_inbound().expect("pending").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first messages were never decided"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        matches!(&decision(&store, first[0]).outcome, Outcome::Refused { reason } if reason.contains("longer than 0.3 s"))
    );
    assert!(matches!(
        decision(&store, first[1]).outcome,
        Outcome::Accepted { .. }
    ));
    // The fresh worker wakes for new mail, and the last mail before the spool closes is
    // decided before `run` returns.
    let later = spool(&store, &envelope, &[mail("woken", "Hello.")]);
    wake.send(()).expect("wake");
    let last = spool(&store, &envelope, &[mail("last", "Bye.")]);
    drop(wake);
    running.join().expect("pipeline thread");
    for id in later.iter().chain(&last) {
        assert!(matches!(
            decision(&store, *id).outcome,
            Outcome::Accepted { .. }
        ));
    }
    assert!(store.pending_inbound().expect("pending").is_empty());
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn at_the_stop_signal_the_pipeline_ends_and_the_backlog_waits_in_the_spool() {
    let (store, dir) = common::store_with_org("pipeline-stop", "guard");
    let envelope = common::envelope("guard");
    let raws: Vec<Vec<u8>> = (0..40)
        .map(|n| mail(&format!("backlog{n}"), "Hi."))
        .collect();
    let ids = spool(&store, &envelope, &raws);
    let (_wake, wake_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    stop.send_replace(true);
    let processor =
        Processor::new(store.clone(), None, postdesk_gateway::DEFAULT_BUDGET).expect("pipeline");
    // The spool is still open (`_wake`): the pipeline ends for the signal alone, between
    // messages, with nothing in hand.
    Pipeline::new(processor, wake_rx, stopped).run();
    assert_eq!(store.pending_inbound().expect("pending"), ids);
    assert_eq!(store.crash_suspect().expect("marker"), None, "a clean stop");
    // The next start takes the backlog.
    let mut next =
        Processor::new(store.clone(), None, postdesk_gateway::DEFAULT_BUDGET).expect("pipeline");
    assert_eq!(next.process_pending().expect("pass"), ids.len());
    assert!(store.pending_inbound().expect("pending").is_empty());
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_message_in_hand_at_three_crashes_is_recorded_and_the_rest_go_on() {
    let (store, dir) = common::store_with_org("pipeline-poison", "guard");
    let envelope = common::envelope("guard");
    let ids = spool(
        &store,
        &envelope,
        &[mail("poison", "Kills the server."), mail("next", "Fine.")],
    );
    // The server died with the first message in hand, twice already (each start counts
    // one), and once more now.
    store.note_planning(ids[0], true).expect("in hand");
    for crashes in 1..=2 {
        assert_eq!(
            store.crash_suspect().expect("counted"),
            Some((ids[0], crashes))
        );
    }
    let mut pipeline =
        Processor::new(store.clone(), None, postdesk_gateway::DEFAULT_BUDGET).expect("pipeline");
    pipeline.process_pending().expect("pass");
    let poison = decision(&store, ids[0]);
    assert!(
        matches!(&poison.outcome, Outcome::Refused { reason } if reason.contains("stopped 3 times")),
        "{poison:?}"
    );
    assert!(matches!(
        decision(&store, ids[1]).outcome,
        Outcome::Accepted { .. }
    ));
    assert_eq!(
        store.crash_suspect().expect("clean"),
        None,
        "a finished pass leaves nothing in hand"
    );
    drop(pipeline);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_message_in_hand_at_one_crash_is_tried_again() {
    let (store, dir) = common::store_with_org("pipeline-retry", "guard");
    let envelope = common::envelope("guard");
    let ids = spool(&store, &envelope, &[mail("unlucky", "In hand at a crash.")]);
    store.note_planning(ids[0], true).expect("in hand");
    let mut pipeline =
        Processor::new(store.clone(), None, postdesk_gateway::DEFAULT_BUDGET).expect("pipeline");
    pipeline.process_pending().expect("pass");
    assert!(matches!(
        decision(&store, ids[0]).outcome,
        Outcome::Accepted { .. }
    ));
    drop(pipeline);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}
