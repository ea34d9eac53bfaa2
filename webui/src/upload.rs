//! Forms with files (multipart): their text fields and files, read within the desk's
//! limits on files per message.

use axum::extract::Multipart;
use postdesk_desk::files::{NewFile, MAX_FILES, MAX_FILE_BYTES};
use std::collections::HashMap;

/// Largest form with files: the files' limit and room for the text.
pub const MAX_UPLOAD_BODY: usize = MAX_FILE_BYTES + 256 * 1024;

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

    /// Reads the whole form; files come from inputs named `files`. Says what is wrong in a
    /// sentence for the page.
    pub async fn read(mut multipart: Multipart) -> Result<Upload, String> {
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
            if upload.files.len() >= MAX_FILES {
                return Err(format!("At most {MAX_FILES} files."));
            }
            upload
                .files
                .push(NewFile::new(&filename, &content_type, bytes.to_vec()));
        }
        Ok(upload)
    }
}
