//! Transports. With no relay configured, each message is written as an `.eml` file under
//! the data folder's `outbox/`, atomically (a temporary file, then rename); otherwise it
//! goes to the relay.

/// Where outbound mail goes.
pub enum Transport {
    Folder(FolderTransport),
    Relay(crate::RelayTransport),
}

use std::io::Write;
use std::path::PathBuf;

pub struct FolderTransport {
    dir: PathBuf,
}

impl FolderTransport {
    pub fn new(dir: PathBuf) -> std::io::Result<FolderTransport> {
        std::fs::create_dir_all(&dir)?;
        Ok(FolderTransport { dir })
    }

    /// The file a mail with outbox key `key` is written to.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(postdesk_store::delivered_file_name(key))
    }

    /// Writes `raw` as `<key>.eml`; writing the same key again replaces it, so a replay
    /// after a crash leaves one file.
    pub fn deliver(&self, key: &str, raw: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.path_of(key);
        let name = postdesk_store::delivered_file_name(key);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(raw)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}
