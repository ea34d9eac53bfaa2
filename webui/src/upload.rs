//! Forms with files (multipart): their text fields and files, read within the desk's
//! limits on files per message.

use axum::extract::Multipart;
use postdesk_desk::files::{NewFile, MAX_FILES, MAX_FILE_BYTES};
use std::collections::HashMap;

/// Largest form with files: the files' limit and room for the text.
pub const MAX_UPLOAD_BODY: usize = MAX_FILE_BYTES + 256 * 1024;
/// Text fields a form may have: ours have a dozen; many thousands only cost time.
const MAX_FIELDS: usize = 100;
/// Files with one portal request (staff forms take as many as a mail may carry).
pub const PORTAL_FILES: usize = 10;

/// A form's text fields (the last of a repeated name wins) and its files.
#[derive(Default)]
pub struct Upload {
    fields: HashMap<String, String>,
    pub files: Vec<NewFile>,
}

impl Upload {
    /// A text field, empty when it was not sent.
    pub fn field(&self, name: &str) -> String {
        self.fields.get(name).cloned().unwrap_or_default()
    }

    /// A form without files.
    pub fn from_fields(fields: HashMap<String, String>) -> Upload {
        Upload {
            fields,
            files: Vec::new(),
        }
    }

    /// Reads the whole form, at most `max_files` files (from inputs named `files`). Says
    /// what is wrong in a sentence for the page.
    pub async fn read(mut multipart: Multipart, max_files: usize) -> Result<Upload, String> {
        let max_files = max_files.min(MAX_FILES);
        let mut upload = Upload::default();
        let too_big = || {
            format!(
                "The files may have {} MB together.",
                MAX_FILE_BYTES / (1024 * 1024)
            )
        };
        let mut total = 0usize;
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => return Err(format!("The form could not be read ({e}). {}", too_big())),
            };
            let name = field.name().unwrap_or_default().to_string();
            if name != "files" {
                if upload.fields.len() >= MAX_FIELDS {
                    return Err("The form has too many fields.".into());
                }
                let value = field
                    .text()
                    .await
                    .map_err(|_| "A field of the form could not be read.".to_string())?;
                upload.fields.insert(name, value);
                continue;
            }
            let filename = field.file_name().unwrap_or_default().to_string();
            let content_type = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_string();
            let bytes = field
                .bytes()
                .await
                .map_err(|_| "A file could not be read.".to_string())?;
            // A file input left empty still sends a part without a name or bytes.
            if filename.is_empty() && bytes.is_empty() {
                continue;
            }
            total += bytes.len();
            if total > MAX_FILE_BYTES {
                return Err(too_big());
            }
            if upload.files.len() >= max_files {
                return Err(format!("At most {max_files} files."));
            }
            upload
                .files
                .push(NewFile::new(&filename, &content_type, bytes.to_vec()));
        }
        Ok(upload)
    }
}
