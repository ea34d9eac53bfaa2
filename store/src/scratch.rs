//! For the store's unit tests: a store in a temporary folder, removed when dropped.

use crate::Store;

pub(crate) struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh store named after the test (`name`) and this process.
pub(crate) fn scratch_store(name: &str) -> (Store, Scratch) {
    let dir = std::env::temp_dir().join(format!("postdesk-unit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (Store::open(&dir).expect("open"), Scratch(dir))
}
