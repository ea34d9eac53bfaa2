//! The data folder is private to the account that runs Postdesk: everything is created
//! with umask 077 (folders 0700, files 0600), and a folder left open to others is
//! tightened with a warning. It holds mail, secrets, keys and the outbox.

use anyhow::{Context, Result};
use std::path::Path;

/// Makes every file and folder this process creates private; call before writing anything.
pub fn private_umask() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Tightens an existing data folder that others may read or enter to 0700.
pub fn tighten(data: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data)
            .with_context(|| format!("cannot read {}", data.display()))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private", data.display()))?;
            eprintln!(
                "warning: the data folder {} was open to other users (mode {mode:o}); it is \
                 now 0700. Check who could read it until now.",
                data.display()
            );
        }
    }
    Ok(())
}
