//! Files people attach on the web or through the API: the limits (as for mail), safe
//! names, and storing them as blobs the ticket's events refer to.

use crate::error::{DeskError, DeskResult};
use postdesk_store::{AttachmentRef, Store};

/// At most this many files with one message (as for mail).
pub const MAX_FILES: usize = 100;
/// At most this many bytes of files with one message, all together (mail's size limit).
pub const MAX_FILE_BYTES: usize = 25 * 1024 * 1024;

/// A file as it arrives, before it is stored.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl NewFile {
    /// A file named and typed by whoever sent it: the name loses path separators, quotes
    /// and control characters (it ends up in pages and mail headers), the type must look
    /// like `type/subtype`.
    pub fn new(name: &str, content_type: &str, bytes: Vec<u8>) -> NewFile {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_control() || matches!(c, '/' | '\\' | '"') {
                    '_'
                } else {
                    c
                }
            })
            .take(200)
            .collect();
        let name = name.trim();
        let content_type = content_type.trim().to_ascii_lowercase();
        let typed = content_type.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && content_type
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(c))
        });
        NewFile {
            name: if name.is_empty() {
                "attachment".into()
            } else {
                name.to_string()
            },
            content_type: if typed {
                content_type
            } else {
                "application/octet-stream".into()
            },
            bytes,
        }
    }
}

/// Refuses more files, or more bytes, than one message may carry.
pub fn check_files(files: &[NewFile]) -> DeskResult<()> {
    if files.len() > MAX_FILES {
        return Err(DeskError::Invalid(format!(
            "{} files; at most {MAX_FILES} with one message",
            files.len()
        )));
    }
    let total: usize = files.iter().map(|f| f.bytes.len()).sum();
    if total > MAX_FILE_BYTES {
        return Err(DeskError::Invalid(format!(
            "the files have {total} bytes together; at most {MAX_FILE_BYTES}"
        )));
    }
    Ok(())
}

/// Stores the files (deduplicated by hash) and returns what events refer to.
pub(crate) fn store_files(store: &Store, files: &[NewFile]) -> DeskResult<Vec<AttachmentRef>> {
    check_files(files)?;
    files
        .iter()
        .map(|f| {
            Ok(AttachmentRef {
                sha256: store.put_blob(&f.bytes)?,
                size: f.bytes.len() as u64,
                name: f.name.clone(),
                content_type: f.content_type.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_and_types_are_tamed() {
        let f = NewFile::new("../../etc/pa\"ss\r\nBcc: x", "text/html\r\nX: y", vec![]);
        assert_eq!(f.name, ".._.._etc_pa_ss__Bcc: x");
        assert_eq!(f.content_type, "application/octet-stream");
        let f = NewFile::new("  ", "Image/PNG", vec![]);
        assert_eq!(
            (f.name.as_str(), f.content_type.as_str()),
            ("attachment", "image/png")
        );
    }

    #[test]
    fn too_many_or_too_big_is_refused() {
        let many: Vec<NewFile> = (0..=MAX_FILES)
            .map(|i| NewFile::new(&format!("{i}"), "text/plain", vec![]))
            .collect();
        assert!(check_files(&many).is_err());
        let big = vec![NewFile::new("a", "text/plain", vec![0; MAX_FILE_BYTES + 1])];
        assert!(check_files(&big).is_err());
        assert!(check_files(&many[..MAX_FILES]).is_ok());
    }
}
