//! The pipeline commits many messages per transaction; a message that threads on one in
//! the same uncommitted batch must still land in that message's ticket, and duplicates in
//! one batch must still be recognised.

mod common;

use postdesk_store::{Envelope, Outcome};

fn mail(from: &str, id: &str, in_reply_to: Option<&str>, subject: &str) -> Vec<u8> {
    let reply = in_reply_to
        .map(|r| format!("In-Reply-To: <{r}>\r\nReferences: <{r}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: {from}\r\nTo: batch@test.example\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         {reply}Date: Thu, 26 Nov 2026 04:00:00 +0000\r\n\r\nText of {id}.\r\n"
    )
    .into_bytes()
}

#[test]
fn replies_in_the_same_batch_thread_into_their_ticket() {
    let (store, dir) = common::store_with_org("pipeline-batches", "batch");
    let envelope = common::envelope("batch");
    // 150 conversations of two messages each, spooled in one commit: the pipeline sees
    // every reply in the same pending list as the message it answers, across its own
    // batch boundaries (16 messages).
    let mut raws = Vec::new();
    for n in 0..150 {
        let from = format!("user{n}@client.test");
        raws.push(mail(
            &from,
            &format!("q{n}@client.test"),
            None,
            &format!("Question {n}"),
        ));
        raws.push(mail(
            &from,
            &format!("r{n}@client.test"),
            Some(&format!("q{n}@client.test")),
            &format!("Re: Question {n}"),
        ));
    }
    // The same message twice (a sender's retry) within the batch.
    raws.push(mail(
        "twice@client.test",
        "twice@client.test",
        None,
        "Twice",
    ));
    raws.push(mail(
        "twice@client.test",
        "twice@client.test",
        None,
        "Twice",
    ));
    let batch: Vec<(&Envelope, &[u8])> = raws.iter().map(|r| (&envelope, r.as_slice())).collect();
    let ids = store.spool_batch(&batch).expect("spooled");

    let processed =
        postdesk_gateway::Processor::new(store.clone(), None, postdesk_gateway::DEFAULT_BUDGET)
            .expect("pipeline")
            .process_pending()
            .expect("pipeline");
    assert_eq!(processed, raws.len());
    assert!(store.pending_inbound().expect("pending").is_empty());

    let decisions = store.decisions(10_000).expect("decisions");
    assert_eq!(decisions.len(), raws.len(), "one decision per message");
    let outcome = |inbound: u64| {
        decisions
            .iter()
            .find(|d| d.inbound == inbound)
            .map(|d| d.outcome.clone())
            .expect("decided")
    };
    for n in 0..150 {
        let (question, reply) = (ids[2 * n], ids[2 * n + 1]);
        let Outcome::Accepted {
            ticket: opened,
            new_ticket: true,
            ..
        } = outcome(question)
        else {
            panic!(
                "question {n} did not open a ticket: {:?}",
                outcome(question)
            );
        };
        match outcome(reply) {
            Outcome::Accepted {
                ticket,
                new_ticket: false,
                ..
            } => assert_eq!(ticket, opened, "reply {n} went to another ticket"),
            other => panic!("reply {n} was not threaded: {other:?}"),
        }
        assert_eq!(store.events_for(opened).expect("events").len(), 2);
    }
    assert!(matches!(
        outcome(ids[300]),
        Outcome::Accepted {
            new_ticket: true,
            ..
        }
    ));
    assert!(
        matches!(outcome(ids[301]), Outcome::Duplicate { .. }),
        "the retry was not recognised: {:?}",
        outcome(ids[301])
    );
    assert_eq!(
        store.tickets(&Default::default()).expect("tickets").len(),
        151
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
