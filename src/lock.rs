//! The data-folder lock: a running server holds it (with its PID inside), so admin
//! commands refuse cleanly instead of fighting over the database.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Held for as long as it lives.
pub struct DataLock {
    _file: File,
}

pub fn acquire(data: &Path, purpose: &str) -> Result<DataLock> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data folder {}", data.display()))?;
    crate::data_folder::tighten(data)?;
    let path = data.join("postdesk.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        bail!(
            "the data folder {} is locked by a running Postdesk server{}; {purpose} needs it to \
             be stopped (or use a different --data folder)",
            data.display(),
            if holder.is_empty() {
                String::new()
            } else {
                format!(" (PID {holder})")
            }
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(DataLock { _file: file })
}
