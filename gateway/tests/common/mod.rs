//! Shared by the gateway's tests: a fresh store in a temporary folder with one
//! organization, and the envelope of a message delivered to it.

#![allow(dead_code)] // each test binary uses its own part of this

use postdesk_store::{Delivery, Envelope, Org, Source, Store};
use std::path::PathBuf;

/// A new store under the temp folder (`name` keeps tests apart) with organization `slug`
/// at `slug@test.example`.
pub fn store_with_org(name: &str, slug: &str) -> (Store, PathBuf) {
    let dir = std::env::temp_dir().join(format!("postdesk-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = postdesk_store::testing::open(&dir).expect("store");
    store
        .add_org(&Org::new(
            slug,
            slug,
            vec![format!("{slug}@test.example")],
            time::OffsetDateTime::now_utc(),
        ))
        .expect("org");
    (store, dir)
}

/// The envelope of an SMTP message for organization `slug`.
pub fn envelope(slug: &str) -> Envelope {
    Envelope {
        source: Source::Smtp,
        peer: "127.0.0.1:1".into(),
        helo: "test".into(),
        mail_from: "sender@client.test".into(),
        deliveries: vec![Delivery {
            org: slug.into(),
            address: format!("{slug}@test.example"),
        }],
        refused: vec![],
        received_at: time::OffsetDateTime::now_utc(),
        mailbox: None,
    }
}
