//! Planning one message within guards: storage trouble stops the pass (it is retried),
//! anything else about the message, a parser's panic included, becomes a recorded refusal.

use super::content::truncated;
use super::lookup::{BatchLookup, BatchView};
use super::plan::{plan_message, PlanContext};
use crate::GatewayError;
use mail_parser::MessageParser;
use postdesk_store::{Decision, Outcome, PipelineWrite, Store, StoreError};
use std::cell::Cell;

/// One message's planned writes, and whether planning read something the batch changes.
pub(super) struct Planned {
    pub writes: Vec<PipelineWrite>,
    pub read_batch: bool,
}

/// Plans one message. Storage trouble is returned (the pass stops and retries later);
/// anything else about the message, a panic in a parser included, becomes a recorded
/// refusal, so one hostile message never blocks those behind it or poisons every restart.
pub(super) fn plan_guarded(
    context: &PlanContext<'_>,
    id: u64,
    view: &BatchView,
) -> Result<Planned, GatewayError> {
    let lookup = BatchLookup {
        store: context.store,
        view,
        read_batch: Cell::new(false),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        plan_message(context, id, &lookup)
    }));
    let writes = match outcome {
        Ok(Ok(writes)) => writes,
        Ok(Err(
            e @ (GatewayError::Store(StoreError::Db(_) | StoreError::Io(_))
            | GatewayError::Io(_)
            | GatewayError::Cancelled),
        )) => return Err(e),
        Ok(Err(e)) => {
            tracing::error!(inbound = id, error = %e, "message could not be applied; recorded as refused");
            failure_writes(
                context.store,
                id,
                &format!("the message could not be applied: {e}; the original is kept"),
                context.clock.now(),
            )?
        }
        Err(_) => {
            tracing::error!(
                inbound = id,
                "processing panicked; message recorded as refused"
            );
            failure_writes(
                context.store,
                id,
                "the message could not be processed (parser failure); the original is kept",
                context.clock.now(),
            )?
        }
    };
    Ok(Planned {
        writes,
        read_batch: lookup.read_batch.get(),
    })
}

/// A refusal for every delivery of a message, completing it; with its Message-ID, From and
/// Subject when its header section can be read (headers only: nothing nests there).
pub(super) fn failure_writes(
    store: &Store,
    id: u64,
    reason: &str,
    at: time::OffsetDateTime,
) -> Result<Vec<PipelineWrite>, GatewayError> {
    let (message_id, from, subject) = store
        .raw_message(id)?
        .and_then(|raw| {
            std::panic::catch_unwind(|| {
                let h = MessageParser::new().parse_headers(&raw[..])?;
                Some((
                    h.message_id().map(|m| truncated(m, 1000).to_string()),
                    h.from()
                        .and_then(|a| a.first())
                        .and_then(|a| a.address())
                        .map(|a| a.trim().to_ascii_lowercase())
                        .unwrap_or_default(),
                    h.subject()
                        .map(|s| truncated(s.trim(), 1000).to_string())
                        .unwrap_or_default(),
                ))
            })
            .ok()
            .flatten()
        })
        .unwrap_or_default();
    let orgs: Vec<String> = match store.envelope(id)? {
        Some(e) => e.orgs().map(str::to_string).collect(),
        None => vec![String::new()],
    };
    let orgs = if orgs.is_empty() {
        vec![String::new()]
    } else {
        orgs
    };
    let last = orgs.len() - 1;
    let mut writes = Vec::with_capacity(orgs.len());
    for (i, org) in orgs.into_iter().enumerate() {
        let d = Decision {
            inbound: id,
            org,
            message_id: message_id.clone(),
            from: from.clone(),
            subject: subject.clone(),
            outcome: Outcome::Refused {
                reason: reason.to_string(),
            },
            notes: vec![],
            at,
        };
        writes.push(PipelineWrite::Decision {
            decision: d,
            last_delivery: i == last,
        });
    }
    Ok(writes)
}
