//! [`Edit`]: a file read, then replaced by its new contents, keeping its mode and
//! owner; through a symbolic link only when the command says so.

use super::error::FileError;
use super::folder::{Folder, split};
use super::look::is_symlink_at;
use super::write::{Target, write_then_rename};
use rustix::fs::{Mode, OFlags};
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};

/// How a file to edit is read: never through a symlink, never blocking on a FIFO.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// A file read for an edit: [`Edit::replace`] writes the new contents in its place,
/// keeping its mode and owner, provided it is still the same file.
#[derive(Debug)]
pub struct Edit {
    folder: Folder,
    name: OsString,
    /// The file that is edited.
    path: PathBuf,
    /// Held open until the edit ends, so that its inode number cannot be given to
    /// another file meanwhile: "the same file" is the same device and inode.
    _file: File,
    meta: Metadata,
    contents: Vec<u8>,
}

impl Edit {
    /// Reads the regular file `path` for an edit; a symbolic link is refused.
    ///
    /// # Errors
    ///
    /// [`FileError::Symlink`], [`FileError::NotAFile`], or [`FileError::Io`] when it
    /// cannot be read.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let (folder, name) = split(path)?;
        let fd = rustix::fs::openat(&folder, &name, READ, Mode::empty()).map_err(|e| {
            if is_symlink_at(&folder, &name) {
                FileError::symlink(path)
            } else {
                FileError::io("read", path, e)
            }
        })?;
        let mut file = File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| FileError::io("inspect", path, e))?;
        if !meta.is_file() {
            return Err(FileError::NotAFile { path: path.into() });
        }
        let mut contents = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut contents)
            .map_err(|e| FileError::io("read", path, e))?;
        Ok(Edit {
            folder,
            name,
            path: path.into(),
            _file: file,
            meta,
            contents,
        })
    }

    /// Reads, for an edit, the file `path` names: when `path` is a symbolic link, the
    /// file it resolves to (resolved once, here; [`Edit::path`] says which file that
    /// is), else `path` itself. The command means to edit what the link leads to: the
    /// link stays a link, and the file it leads to keeps its mode and owner.
    ///
    /// # Errors
    ///
    /// As [`Edit::open`]; [`FileError::Io`] when the link leads nowhere.
    pub fn open_following_link(path: &Path) -> Result<Self, FileError> {
        let is_link = std::fs::symlink_metadata(path)
            .map_err(|e| FileError::io("read", path, e))?
            .file_type()
            .is_symlink();
        if !is_link {
            return Edit::open(path);
        }
        let real = std::fs::canonicalize(path)
            .map_err(|e| FileError::io("resolve the symbolic link", path, e))?;
        Edit::open(&real)
    }

    /// The file this edit reads and replaces.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its contents, as read.
    pub fn contents(&self) -> &[u8] {
        &self.contents
    }

    /// Writes `bytes` in place of the file read, keeping its mode and owner, and
    /// returns its path (the file edited).
    ///
    /// # Errors
    ///
    /// [`FileError::Changed`] when the name no longer holds the file read,
    /// [`FileError::Owner`] when its owner cannot be kept, [`FileError::Io`] when a
    /// step fails.
    pub fn replace(self, bytes: &[u8]) -> Result<PathBuf, FileError> {
        write_then_rename(
            &self.folder,
            &self.name,
            &self.path,
            bytes,
            Target::Keep(&self.meta),
        )?;
        Ok(self.path)
    }
}
