//! For the store's unit tests: a store in a temporary folder, removed when dropped.

use crate::Store;

pub(crate) struct Scratch(pub(crate) std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh store named after the test (`name`) and this process.
pub(crate) fn scratch_store(name: &str) -> (Store, Scratch) {
    let dir = std::env::temp_dir().join(format!("postdesk-unit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (crate::testing::open(&dir).expect("open"), Scratch(dir))
}

/// Adds an organization `slug` with the address `slug@x.test` to a scratch store.
pub(crate) fn scratch_org(store: &Store, slug: &str) {
    store
        .add_org(&crate::Org::new(
            slug,
            slug,
            vec![format!("{slug}@x.test")],
            time::OffsetDateTime::now_utc(),
        ))
        .expect("org");
}

/// Opens a ticket of `org` from ann@example.com at `at` in a scratch store.
pub(crate) fn scratch_ticket(store: &Store, org: &str, at: time::OffsetDateTime) -> crate::Ticket {
    store
        .open_ticket(&crate::NewTicket::by_requester(
            org,
            "ann@example.com",
            "printer",
            "it jams",
            at,
        ))
        .expect("open")
        .0
}
