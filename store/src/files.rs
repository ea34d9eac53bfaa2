//! Large values kept as files beside the database: raw messages and attachments over
//! [`LARGE`] bytes. sled holds every page it writes in memory until its cache evicts it,
//! and evicts big pages late (see `vendor/sled/PATCHES.md`, patch 4), so a stream of big
//! messages grew the process by about their size each; a file costs no memory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Values larger than this go to files. Small mail, most of it, stays in sled, whose group
/// commit makes it cheap; each file costs a sync of its own.
pub(crate) const LARGE: usize = 64 * 1024;

/// The kinds of files, each in a folder of its own.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// Raw inbound messages, named by inbound id.
    Raw,
    /// Attachment contents, named by SHA-256.
    Blob,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Blob => "blobs",
        }
    }
}

/// The `files/` folder of a data folder.
#[derive(Clone)]
pub(crate) struct Files {
    root: PathBuf,
}

impl Files {
    pub(crate) fn open(data: &Path) -> io::Result<Files> {
        let root = data.join("files");
        for kind in [Kind::Raw, Kind::Blob] {
            fs::create_dir_all(root.join(kind.folder()))?;
        }
        Ok(Files { root })
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        self.root.join(kind.folder()).join(name)
    }

    /// Writes `bytes` as `name` and syncs the file: a reader never sees part of it (it is
    /// written aside and renamed). The rename is durable after [`Files::sync_folder`].
    pub(crate) fn write(&self, kind: Kind, name: &str, bytes: &[u8]) -> io::Result<()> {
        let target = self.path(kind, name);
        let partial = target.with_extension("partial");
        let mut file = File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&partial, &target)
    }

    /// Makes the names written so far in `kind`'s folder durable.
    pub(crate) fn sync_folder(&self, kind: Kind) -> io::Result<()> {
        File::open(self.root.join(kind.folder()))?.sync_all()
    }

    pub(crate) fn read(&self, kind: Kind, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(kind, name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes `name`; one already gone is no error.
    pub(crate) fn remove(&self, kind: Kind, name: &str) -> io::Result<()> {
        match fs::remove_file(self.path(kind, name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The names of the files of `kind` (those being written aside excluded).
    pub(crate) fn names(&self, kind: Kind) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.root.join(kind.folder()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".partial") {
                names.push(name);
            }
        }
        Ok(names)
    }

    pub(crate) fn exists(&self, kind: Kind, name: &str) -> bool {
        self.path(kind, name).is_file()
    }
}
