//! Every file warden creates or replaces, made one way: new files, replaced files, an
//! edit of the file a symbolic link leads to, the audit log opened for appending, a
//! log moved aside at rotation, and the folders they live in.
//!
//! Anything else in warden that wants to write a file calls this module: `clippy.toml`
//! disallows the raw ways (`std::fs::write`, `File::create`, `OpenOptions::open`,
//! `fs::rename`, `fs::copy`, links, `set_permissions`, ...) everywhere else, so a new
//! writer cannot forget a symlink or an owner.
//!
//! # Security
//!
//! warden writes into folders that other people may own: a policy's folder, the folder
//! of an audit log, a folder named on the command line. Whoever can write such a
//! folder can put a symbolic link, a FIFO or a file of their own under the name warden
//! is about to write, and warden often runs with more rights than they have (root, the
//! key holder). So, for every file:
//!
//! - **The last component is never followed.** Files are written under a temporary
//!   name created with `O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC` (mode 0600, an
//!   unpredictable name in the same folder), written in full and `fsync`ed, then
//!   renamed into place: a reader sees the old file or the new one, never half of one,
//!   and a crash leaves no partial file under the real name.
//! - **A new file never replaces anything** ([`create_new`], [`Folder::create_new`]):
//!   it is moved into place with `renameat2(RENAME_NOREPLACE)` (or, where the file
//!   system lacks it, `link` + `unlink`, which never replace either), so a symlink or a
//!   file planted under the name fails the write ([`FileError::Exists`]).
//! - **A replaced file keeps its mode and owner** ([`replace`], [`Edit::replace`]):
//!   the temporary file gets them (`fchown`, then `fchmod`) before the rename, and when
//!   the owner cannot be kept, nothing is written ([`FileError::Owner`]). Just before
//!   the rename, the name must still be the very file that was inspected (device and
//!   inode), else nothing is written ([`FileError::Changed`]).
//! - **A symlinked target is refused** with an error that names where the link leads
//!   ([`FileError::Symlink`]). A command that means to edit the file a link resolves
//!   to says so: [`Edit::open_following_link`] resolves the link once, reads the file
//!   it leads to (opened without following any further link), and
//!   [`Edit::replace`] writes that same file the same safe way and returns its path,
//!   for the command to report.
//! - **The folder is opened once** ([`Folder`]); every later step (inspection, the
//!   temporary file, the rename, the final `fsync` of the folder) is relative to that
//!   descriptor, so renaming folders above it during the write changes nothing.
//! - **The audit log** is opened for appending with `O_APPEND | O_NOFOLLOW |
//!   O_NONBLOCK`, and created, when missing, with `O_EXCL` ([`open_append`]); a
//!   symlink, a FIFO or a directory under its name is refused.
//! - **A file moved aside** at rotation never lands on an existing name
//!   ([`rename_aside`]).

// The one module allowed to use the raw file-writing functions (see `clippy.toml`).
#![allow(clippy::disallowed_methods)]

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the temporary file of every write is created: a fresh file, never an existing
/// one, never through a symlink.
const CREATE: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How a name is looked at without following it: `O_PATH | O_NOFOLLOW` opens a
/// symlink itself, and opening never blocks on a FIFO.
const LOOK: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// How a file to edit is read: never through a symlink, never blocking on a FIFO.
const READ: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// How the audit log is opened: read and append, never through a symlink, never
/// blocking on a FIFO (a regular file ignores `O_NONBLOCK`).
const APPEND: OFlags = OFlags::RDWR
    .union(OFlags::APPEND)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// Why a file could not be written. Nothing was written under the file's name when
/// any of these is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The name is a symbolic link, and this write does not follow links.
    #[error(
        "`{}` is a symbolic link to `{}`; warden does not write through a symbolic link, so nothing was written: name the real file, or remove the link",
        .path.display(), .target.display()
    )]
    Symlink {
        /// The name given.
        path: PathBuf,
        /// Where the link leads (resolved as far as it exists).
        target: PathBuf,
    },
    /// Something already has the name of a file that must be new.
    #[error(
        "`{}` already exists, and warden never overwrites it: choose another name, or move that file away",
        .path.display()
    )]
    Exists {
        /// The name.
        path: PathBuf,
    },
    /// The name is a directory, a FIFO, a socket or a device.
    #[error("`{}` is not a regular file; nothing was written", .path.display())]
    NotAFile {
        /// The name.
        path: PathBuf,
    },
    /// A folder warden keeps its own files in is not private to this user.
    #[error(
        "the folder `{}` {problem}; warden keeps its own files only in a folder of this user's that nobody else can write",
        .path.display()
    )]
    NotPrivate {
        /// The folder.
        path: PathBuf,
        /// What is wrong (its owner, its mode).
        problem: String,
    },
    /// The replaced file's owner could not be given to the new file.
    #[error(
        "cannot keep the owner of `{}` (uid {uid}, gid {gid}): {source}; nothing was written: run as its owner, or as root",
        .path.display()
    )]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
        /// Why `fchown` failed.
        source: std::io::Error,
    },
    /// The file was replaced by another (or removed) while it was being written.
    #[error(
        "`{}` was replaced or removed by someone else while warden was writing it; nothing was written: run the command again",
        .path.display()
    )]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The operating system refused a step.
    #[error("cannot {action} `{}`: {source}", .path.display())]
    Io {
        /// What warden was doing (`create`, `write`, `open the folder of`, ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl FileError {
    /// The file or folder the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Symlink { path, .. }
            | FileError::Exists { path }
            | FileError::NotAFile { path }
            | FileError::NotPrivate { path, .. }
            | FileError::Owner { path, .. }
            | FileError::Changed { path }
            | FileError::Io { path, .. } => path,
        }
    }

    fn io(action: &'static str, path: &Path, source: impl Into<std::io::Error>) -> Self {
        FileError::Io {
            action,
            path: path.into(),
            source: source.into(),
        }
    }

    fn symlink(path: &Path) -> Self {
        FileError::Symlink {
            path: path.into(),
            target: link_target(path),
        }
    }
}

/// Where the symbolic link `path` leads: its fully resolved path, or, for a link
/// that leads nowhere, its target as written, taken relative to its folder.
fn link_target(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    match std::fs::read_link(path) {
        Ok(target) => path
            .parent()
            .map_or(target.clone(), |dir| dir.join(&target)),
        Err(_) => PathBuf::from("?"),
    }
}

/// A folder held open: every write in it is relative to this descriptor.
#[derive(Debug, Clone)]
pub struct Folder {
    fd: Arc<OwnedFd>,
    /// The path it was opened by, for messages only: never resolved again.
    path: PathBuf,
}

impl AsFd for Folder {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Folder {
    /// A folder the caller opened itself (the module cache walks its path without
    /// following links); `path` is only for messages.
    pub fn from_opened(fd: OwnedFd, path: impl Into<PathBuf>) -> Self {
        Folder {
            fd: Arc::new(fd),
            path: path.into(),
        }
    }

    /// Opens the folder `path` (following symbolic links on the way: the folder is
    /// the caller's choice; only a file's own name is never followed).
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] when it cannot be opened or is not a folder.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty()) {
            // A folder one may write but not list: enough to work in by name.
            Err(Errno::ACCESS) => rustix::fs::openat(
                rustix::fs::CWD,
                path,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ),
            other => other,
        }
        .map_err(|e| FileError::io("open the folder", path, e))?;
        Ok(Folder::from_opened(fd, path))
    }

    /// Opens the folder `path` for files only this user may touch: creates it (and
    /// missing parents) with mode 0700 when missing, and refuses it unless the opened
    /// folder (not a symlink in its place) is owned by this user and writable by
    /// nobody else.
    ///
    /// # Errors
    ///
    /// [`FileError::NotPrivate`] for a folder of someone else's, or one others can
    /// write; [`FileError::Symlink`] when `path` itself is a symlink;
    /// [`FileError::Io`] when it cannot be created or opened.
    pub fn open_private(path: &Path) -> Result<Self, FileError> {
        create_dirs(path, 0o700)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty()).map_err(|e| {
            if is_symlink_at(rustix::fs::CWD, path.as_os_str()) {
                FileError::symlink(path)
            } else {
                FileError::io("open the folder", path, e)
            }
        })?;
        let meta = metadata(&fd).map_err(|e| FileError::io("inspect the folder", path, e))?;
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me {
            return Err(FileError::NotPrivate {
                path: path.into(),
                problem: format!(
                    "is owned by uid {}, not by this user (uid {me})",
                    meta.uid()
                ),
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(FileError::NotPrivate {
                path: path.into(),
                problem: format!(
                    "is writable by group or others (mode {:o}): `chmod 700` it",
                    meta.mode() & 0o7777
                ),
            });
        }
        Ok(Folder::from_opened(fd, path))
    }

    /// The path the folder was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` to a new file `name` in this folder, with exactly `mode`, and
    /// returns its path. The file appears complete or not at all.
    ///
    /// # Errors
    ///
    /// [`FileError::Exists`] when anything has the name already (a symlink
    /// included); [`FileError::Io`] when a step fails.
    pub fn create_new(&self, name: &OsStr, bytes: &[u8], mode: u32) -> Result<PathBuf, FileError> {
        let shown = self.path.join(name);
        write_then_rename(self, name, &shown, bytes, Target::New { mode })?;
        Ok(shown)
    }

    /// Writes `bytes` as the file `name` in this folder, with exactly `mode`, in place
    /// of whatever has the name now: a file, or a symbolic link, which is replaced
    /// itself and never followed. Only for a folder nobody else can write (the module
    /// cache), where what has the name is this user's own leftover.
    ///
    /// # Errors
    ///
    /// [`FileError::Io`] when a step fails.
    pub fn supersede(&self, name: &OsStr, bytes: &[u8], mode: u32) -> Result<(), FileError> {
        let shown = self.path.join(name);
        write_then_rename(self, name, &shown, bytes, Target::Supersede { mode })
    }
}

/// The folder that holds `path`, held open, and the file's own name.
fn split(path: &Path) -> Result<(Folder, OsString), FileError> {
    let name = path
        .file_name()
        .ok_or_else(|| FileError::NotAFile { path: path.into() })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let folder = Folder::open(parent).map_err(|e| match e {
        FileError::Io { source, .. } => FileError::Io {
            action: "open the folder of",
            path: path.into(),
            source,
        },
        other => other,
    })?;
    Ok((folder, name.to_owned()))
}

/// Writes `bytes` to a new file at `path`, with exactly `mode`; never replaces
/// anything, a symlink included. The file appears complete or not at all.
///
/// # Errors
///
/// [`FileError::Exists`] when anything has the name already; [`FileError::Io`] when a
/// step fails.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let (folder, name) = split(path)?;
    write_then_rename(&folder, &name, path, bytes, Target::New { mode })
}

/// Writes `bytes` at `path`: a new file with exactly `mode_if_new`, or in place of the
/// regular file there, keeping its mode and owner. A symbolic link at `path` is
/// refused, not followed and not replaced.
///
/// # Errors
///
/// [`FileError::Symlink`] for a link, [`FileError::NotAFile`] for a directory, FIFO or
/// device, [`FileError::Owner`] when its owner cannot be kept,
/// [`FileError::Changed`] when the file was swapped meanwhile, [`FileError::Io`] when a
/// step fails.
pub fn replace(path: &Path, bytes: &[u8], mode_if_new: u32) -> Result<(), FileError> {
    let (folder, name) = split(path)?;
    match look(&folder, &name).map_err(|e| FileError::io("inspect", path, e))? {
        None => write_then_rename(
            &folder,
            &name,
            path,
            bytes,
            Target::New { mode: mode_if_new },
        )
        .map_err(|e| match e {
            // Something took the name meanwhile: replacing it was not asked for.
            FileError::Exists { .. } => FileError::Changed { path: path.into() },
            other => other,
        }),
        Some((_, meta)) if meta.file_type().is_symlink() => Err(FileError::symlink(path)),
        Some((_, meta)) if !meta.is_file() => Err(FileError::NotAFile { path: path.into() }),
        // `_held` keeps the file's inode number its own until the rename.
        Some((_held, meta)) => write_then_rename(&folder, &name, path, bytes, Target::Keep(&meta)),
    }
}

/// The checks [`replace`] makes before it writes, for a command that must fail before
/// it does anything else: `path` is missing, or a regular file; not a symlink.
/// ([`replace`] checks again when it writes.)
///
/// # Errors
///
/// [`FileError::Symlink`], [`FileError::NotAFile`], or [`FileError::Io`] when the
/// folder of `path` cannot be opened.
pub fn check_replaceable(path: &Path) -> Result<(), FileError> {
    let (folder, name) = split(path)?;
    match look(&folder, &name).map_err(|e| FileError::io("inspect", path, e))? {
        Some((_, meta)) if meta.file_type().is_symlink() => Err(FileError::symlink(path)),
        Some((_, meta)) if !meta.is_file() => Err(FileError::NotAFile { path: path.into() }),
        _ => Ok(()),
    }
}

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

/// Opens `path` to read and append to (the audit log and its lock files): an
/// existing regular file, opened without following a symlink; or, when nothing has
/// the name, a new one, created exclusively with exactly `mode_if_new`.
///
/// # Errors
///
/// [`FileError::Symlink`] for a link, [`FileError::NotAFile`] for anything but a
/// regular file, [`FileError::Io`] when it cannot be opened or created.
pub fn open_append(path: &Path, mode_if_new: u32) -> Result<File, FileError> {
    let open_error = |e: Errno| {
        if e == Errno::LOOP || is_symlink_at(rustix::fs::CWD, path.as_os_str()) {
            FileError::symlink(path)
        } else {
            FileError::io("open", path, e)
        }
    };
    // Someone may create or remove the file between the two opens: try a few times.
    let mut last = Errno::NOENT;
    for _ in 0..8 {
        match rustix::fs::openat(rustix::fs::CWD, path, APPEND, Mode::empty()) {
            Ok(fd) => return regular(File::from(fd), path),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(open_error(e)),
        }
        let mode = Mode::from_raw_mode(mode_if_new & 0o7777);
        match rustix::fs::openat(
            rustix::fs::CWD,
            path,
            APPEND | OFlags::CREATE | OFlags::EXCL,
            mode,
        ) {
            Ok(fd) => {
                // Exactly `mode_if_new`, whatever the umask.
                rustix::fs::fchmod(&fd, mode).map_err(|e| FileError::io("create", path, e))?;
                return regular(File::from(fd), path);
            }
            Err(Errno::EXIST) => last = Errno::EXIST,
            Err(e) => return Err(open_error(e)),
        }
    }
    Err(open_error(last))
}

fn regular(file: File, path: &Path) -> Result<File, FileError> {
    let meta = file
        .metadata()
        .map_err(|e| FileError::io("inspect", path, e))?;
    if meta.is_file() {
        Ok(file)
    } else {
        Err(FileError::NotAFile { path: path.into() })
    }
}

/// Moves the file `from` to the new name `to` (in the same file system), never
/// replacing anything already at `to`: a log file moved aside at rotation.
///
/// # Errors
///
/// [`FileError::Exists`] when something has the name `to`; [`FileError::Io`] when the
/// move fails.
pub fn rename_aside(from: &Path, to: &Path) -> Result<(), FileError> {
    let cwd = rustix::fs::CWD;
    match rustix::fs::renameat_with(cwd, from, cwd, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(FileError::Exists { path: to.into() }),
        // A file system without `RENAME_NOREPLACE`: a hard link never replaces either.
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            match rustix::fs::linkat(cwd, from, cwd, to, AtFlags::empty()) {
                Ok(()) => rustix::fs::unlinkat(cwd, from, AtFlags::empty())
                    .map_err(|e| FileError::io("move aside", from, e)),
                Err(Errno::EXIST) => Err(FileError::Exists { path: to.into() }),
                Err(e) => Err(FileError::io("move aside", from, e)),
            }
        }
        Err(e) => Err(FileError::io("move aside", from, e)),
    }
}

/// Creates the folder `path` and its missing parents, each with `mode` (existing
/// ones are left as they are).
///
/// # Errors
///
/// [`FileError::Io`] when one cannot be created.
pub fn create_dirs(path: &Path, mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if path.as_os_str().is_empty() || path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| FileError::io("create the folder", path, e))
}

/// What a write does to the name it targets.
enum Target<'a> {
    /// Nothing may have the name; the file gets exactly `mode`.
    New { mode: u32 },
    /// The regular file described must still have the name; the new one gets its
    /// mode and owner.
    Keep(&'a Metadata),
    /// Whatever has the name is replaced (never followed); the file gets `mode`.
    Supersede { mode: u32 },
}

/// Writes `bytes` under a fresh temporary name in `folder`, gives it its mode (and
/// owner), syncs it, and renames it to `name` as `target` says; the temporary file is
/// removed on any failure.
fn write_then_rename(
    folder: &Folder,
    name: &OsStr,
    shown: &Path,
    bytes: &[u8],
    target: Target<'_>,
) -> Result<(), FileError> {
    let tmp = temp_name(name).map_err(|e| FileError::io("create", shown, e))?;
    let fd = rustix::fs::openat(folder, &tmp, CREATE, Mode::RUSR | Mode::WUSR)
        .map_err(|e| FileError::io("create a temporary file for", shown, e))?;
    let mut file = File::from(fd);
    let result = fill(&mut file, shown, bytes, &target)
        .and_then(|()| put_in_place(folder, &tmp, name, shown, &target));
    if result.is_err() {
        let _ = rustix::fs::unlinkat(folder, &tmp, AtFlags::empty());
    } else {
        // The rename itself must survive a crash too. (A folder held by `O_PATH`
        // cannot be synced; its file system still orders the rename after the data.)
        let _ = rustix::fs::fsync(folder);
    }
    result
}

/// Writes the contents, the owner and the mode of the temporary file, and syncs it.
fn fill(file: &mut File, shown: &Path, bytes: &[u8], target: &Target<'_>) -> Result<(), FileError> {
    file.write_all(bytes)
        .map_err(|e| FileError::io("write", shown, e))?;
    let mode = match target {
        Target::New { mode } | Target::Supersede { mode } => *mode,
        Target::Keep(meta) => {
            let ours = file
                .metadata()
                .map_err(|e| FileError::io("write", shown, e))?;
            if (ours.uid(), ours.gid()) != (meta.uid(), meta.gid()) {
                rustix::fs::fchown(
                    &*file,
                    Some(rustix::fs::Uid::from_raw(meta.uid())),
                    Some(rustix::fs::Gid::from_raw(meta.gid())),
                )
                .map_err(|e| FileError::Owner {
                    path: shown.into(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                    source: e.into(),
                })?;
            }
            meta.mode()
        }
    };
    // After `fchown`, which clears the set-id bits.
    rustix::fs::fchmod(&*file, Mode::from_raw_mode(mode & 0o7777))
        .map_err(|e| FileError::io("set the mode of", shown, e))?;
    file.sync_all()
        .map_err(|e| FileError::io("write", shown, e))
}

/// Renames the temporary file `tmp` to `name` as `target` says.
fn put_in_place(
    folder: &Folder,
    tmp: &OsStr,
    name: &OsStr,
    shown: &Path,
    target: &Target<'_>,
) -> Result<(), FileError> {
    let rename_error = |e: Errno| FileError::io("write", shown, e);
    match target {
        Target::Supersede { .. } => {
            rustix::fs::renameat(folder, tmp, folder, name).map_err(rename_error)
        }
        Target::Keep(meta) => {
            let now = look(folder, name).map_err(|e| FileError::io("inspect", shown, e))?;
            let same =
                now.is_some_and(|(_, now)| now.dev() == meta.dev() && now.ino() == meta.ino());
            if !same {
                return Err(FileError::Changed { path: shown.into() });
            }
            rustix::fs::renameat(folder, tmp, folder, name).map_err(rename_error)
        }
        Target::New { .. } => {
            match rustix::fs::renameat_with(folder, tmp, folder, name, RenameFlags::NOREPLACE) {
                Ok(()) => Ok(()),
                Err(Errno::EXIST) => Err(FileError::Exists { path: shown.into() }),
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                    // No `RENAME_NOREPLACE` here: a hard link never replaces either.
                    match rustix::fs::linkat(folder, tmp, folder, name, AtFlags::empty()) {
                        Ok(()) => {
                            let _ = rustix::fs::unlinkat(folder, tmp, AtFlags::empty());
                            Ok(())
                        }
                        Err(Errno::EXIST) => Err(FileError::Exists { path: shown.into() }),
                        Err(e) => Err(rename_error(e)),
                    }
                }
                Err(e) => Err(rename_error(e)),
            }
        }
    }
}

/// `.NAME.RANDOM.tmp`: in the same folder (so the rename stays in one file system),
/// hidden, and not guessable in advance.
fn temp_name(name: &OsStr) -> std::io::Result<OsString> {
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut tmp = OsString::from(".");
    // Names are at most 255 bytes: keep the temporary one under that.
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name);
    let kept = &bytes[..bytes.len().min(200)];
    tmp.push(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(kept));
    tmp.push(".");
    tmp.push(hex::encode(random));
    tmp.push(".tmp");
    Ok(tmp)
}

/// What has the name `name` in `folder`, not following a symlink: `None` when
/// nothing does. The descriptor (`O_PATH`) holds it: while it is open, its inode
/// number is not given to another file.
fn look(folder: &Folder, name: &OsStr) -> std::io::Result<Option<(OwnedFd, Metadata)>> {
    match rustix::fs::openat(folder, name, LOOK, Mode::empty()) {
        Ok(fd) => {
            let meta = metadata(&fd)?;
            Ok(Some((fd, meta)))
        }
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether `name` in `dir` is a symbolic link (without following it).
fn is_symlink_at(dir: impl AsFd, name: &OsStr) -> bool {
    rustix::fs::openat(dir, name, LOOK, Mode::empty())
        .ok()
        .and_then(|fd| metadata(&fd).ok())
        .is_some_and(|m| m.file_type().is_symlink())
}

/// `fstat` of a descriptor, as std's [`Metadata`].
fn metadata(fd: &OwnedFd) -> std::io::Result<Metadata> {
    File::from(fd.try_clone()?).metadata()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_new_file_gets_exactly_its_mode_and_never_replaces_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new");
        create_new(&path, b"one", 0o640).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(mode_of(&path), 0o640);
        let e = create_new(&path, b"two", 0o600).unwrap_err();
        assert!(matches!(e, FileError::Exists { .. }), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");

        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = create_new(&link, b"x", 0o600).unwrap_err();
        assert!(matches!(e, FileError::Exists { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn a_replaced_file_keeps_its_mode_and_a_symlink_is_refused_naming_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        replace(&path, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(mode_of(&path), 0o604);

        let link = dir.path().join("l");
        std::os::unix::fs::symlink("f", &link).unwrap();
        let e = replace(&link, b"evil", 0o600).unwrap_err();
        let real = std::fs::canonicalize(&path).unwrap();
        assert!(
            matches!(&e, FileError::Symlink { target, .. } if *target == real),
            "{e:?}"
        );
        assert!(e.to_string().contains(&real.display().to_string()), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(
            replace(&sub, b"x", 0o600),
            Err(FileError::NotAFile { .. })
        ));
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn an_edit_through_a_link_edits_the_file_it_resolves_to() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("releases")).unwrap();
        let real = dir.path().join("releases/v3.toml");
        std::fs::write(&real, "v3").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("policy.toml");
        std::os::unix::fs::symlink("releases/v3.toml", &link).unwrap();

        assert!(matches!(Edit::open(&link), Err(FileError::Symlink { .. })));
        let edit = Edit::open_following_link(&link).unwrap();
        assert_eq!(edit.contents(), b"v3");
        let edited = edit.replace(b"v3 pinned").unwrap();
        assert_eq!(edited, std::fs::canonicalize(&real).unwrap());
        assert_eq!(std::fs::read(&real).unwrap(), b"v3 pinned");
        assert_eq!(mode_of(&real), 0o640);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn an_edit_refuses_a_file_swapped_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "read").unwrap();
        let edit = Edit::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "someone else's").unwrap();
        assert!(matches!(edit.replace(b"x"), Err(FileError::Changed { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    }

    #[test]
    fn the_log_is_opened_for_appending_never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut f = open_append(&log, 0o600).unwrap();
        f.write_all(b"a\n").unwrap();
        assert_eq!(mode_of(&log), 0o600);
        let mut f = open_append(&log, 0o600).unwrap();
        f.write_all(b"b\n").unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"a\nb\n");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        assert!(matches!(
            open_append(&link, 0o600),
            Err(FileError::Symlink { .. })
        ));
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(
            open_append(&dangling, 0o600),
            Err(FileError::Symlink { .. })
        ));
        assert!(!dir.path().join("nowhere").exists());
        assert!(matches!(
            open_append(dir.path(), 0o600),
            Err(FileError::Io { .. } | FileError::NotAFile { .. })
        ));
    }

    #[test]
    fn a_file_moved_aside_never_lands_on_an_existing_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "a").unwrap();
        std::os::unix::fs::symlink("elsewhere", &b).unwrap();
        assert!(matches!(
            rename_aside(&a, &b),
            Err(FileError::Exists { .. })
        ));
        let c = dir.path().join("c");
        rename_aside(&a, &c).unwrap();
        assert_eq!(std::fs::read(&c).unwrap(), b"a");
        assert!(!a.exists());
    }

    /// Temporary files left in `dir`.
    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }
}
