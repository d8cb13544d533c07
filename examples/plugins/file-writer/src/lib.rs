//! `file-writer`: exercises write capabilities (fs_write `./out`,
//! fs_read `./data`, stdout).
//!
//! Inside the sandbox the host is expected to preopen the granted `./out`
//! directory as `/out` (and `./data` as `/data`). Relative paths given to this
//! plugin are resolved under `/out`; absolute paths are used verbatim, so
//! tests can aim at paths outside the grant and observe the refusal.
//!
//! Every failure is reported as a user error `{op} {PATH}: {error}`; the
//! plugin never panics on bad input or I/O errors.

use sen_plugin_sdk::prelude::*;
use std::fs::{self, OpenOptions};
use std::io::Write;

const USAGE: &str = "usage: file-writer write PATH CONTENT | truncate PATH | append PATH CONTENT \
| mkdir PATH | remove PATH | rename FROM TO | hardlink FROM TO | symlink TARGET LINK | read PATH \
| print TEXT";

/// Relative paths are joined onto `/out`; absolute paths are used verbatim.
fn resolve(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/out/{path}")
    }
}

fn fail(op: &str, path: &str, err: impl std::fmt::Display) -> ExecuteResult {
    ExecuteResult::user_error(format!("{op} {path}: {err}"))
}

fn write(path: &str, content: &str) -> ExecuteResult {
    match fs::write(resolve(path), content) {
        Ok(()) => ExecuteResult::success(format!("wrote {} bytes to {path}", content.len())),
        Err(e) => fail("write", path, e),
    }
}

fn truncate(path: &str) -> ExecuteResult {
    match OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(resolve(path))
    {
        Ok(_) => ExecuteResult::success(format!("truncated {path}")),
        Err(e) => fail("truncate", path, e),
    }
}

fn append(path: &str, content: &str) -> ExecuteResult {
    let result = OpenOptions::new()
        .append(true)
        .create(true)
        .open(resolve(path))
        .and_then(|mut f| f.write_all(content.as_bytes()));
    match result {
        Ok(()) => ExecuteResult::success(format!("appended {} bytes to {path}", content.len())),
        Err(e) => fail("append", path, e),
    }
}

fn mkdir(path: &str) -> ExecuteResult {
    match fs::create_dir(resolve(path)) {
        Ok(()) => ExecuteResult::success(format!("created directory {path}")),
        Err(e) => fail("mkdir", path, e),
    }
}

/// Removes a file, a symlink, or an empty directory.
fn remove(path: &str) -> ExecuteResult {
    let full = resolve(path);
    let result = match fs::symlink_metadata(&full) {
        Ok(meta) if meta.is_dir() => fs::remove_dir(&full),
        Ok(_) => fs::remove_file(&full),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExecuteResult::success(format!("removed {path}")),
        Err(e) => fail("remove", path, e),
    }
}

fn rename(from: &str, to: &str) -> ExecuteResult {
    match fs::rename(resolve(from), resolve(to)) {
        Ok(()) => ExecuteResult::success(format!("renamed {from} to {to}")),
        Err(e) => fail("rename", &format!("{from} -> {to}"), e),
    }
}

fn hardlink(from: &str, to: &str) -> ExecuteResult {
    match fs::hard_link(resolve(from), resolve(to)) {
        Ok(()) => ExecuteResult::success(format!("linked {to} to {from}")),
        Err(e) => fail("hardlink", &format!("{from} -> {to}"), e),
    }
}

fn read(path: &str) -> ExecuteResult {
    match fs::read(resolve(path)) {
        Ok(bytes) => ExecuteResult::success(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => fail("read", path, e),
    }
}

/// Creates LINK (resolved like every other path) pointing at TARGET, which is
/// stored verbatim as the link's contents.
fn symlink(target: &str, link: &str) -> ExecuteResult {
    match wasi_symlink::symlink(target, &resolve(link)) {
        Ok(()) => ExecuteResult::success(format!("symlinked {link} -> {target}")),
        Err(e) => fail("symlink", link, e),
    }
}

/// std has no stable symlink API on wasm32-wasip1, so call the WASI
/// `path_symlink` import directly, relative to the preopened directory
/// (found through `fd_prestat_get` / `fd_prestat_dir_name`) that contains the
/// link path.
mod wasi_symlink {
    use std::io;

    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    extern "C" {
        fn fd_prestat_get(fd: u32, buf: *mut Prestat) -> u16;
        fn fd_prestat_dir_name(fd: u32, path: *mut u8, path_len: usize) -> u16;
        fn path_symlink(
            old_path: *const u8,
            old_path_len: usize,
            fd: u32,
            new_path: *const u8,
            new_path_len: usize,
        ) -> u16;
    }

    /// `__wasi_prestat_t`: a u8 tag (0 = dir) followed by the name length.
    #[repr(C)]
    struct Prestat {
        tag: u8,
        name_len: usize,
    }

    const ERRNO_BADF: u16 = 8;
    /// Upper bound on descriptors probed for preopens.
    const MAX_FD: u32 = 4096;

    fn errno(code: u16) -> io::Error {
        io::Error::from_raw_os_error(i32::from(code))
    }

    /// Splits an absolute path into its components, dropping `.` and empty ones.
    fn components(path: &str) -> Vec<&str> {
        path.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect()
    }

    /// Finds the preopened directory with the longest name that is a prefix of
    /// `path`, and returns its fd plus the remaining relative path.
    fn find_preopen(path: &str) -> io::Result<(u32, String)> {
        let wanted = components(path);
        let mut best: Option<(u32, usize)> = None;
        for fd in 3..MAX_FD {
            let mut stat = Prestat {
                tag: 0,
                name_len: 0,
            };
            // SAFETY: `stat` is a valid, writable `__wasi_prestat_t`.
            let rc = unsafe { fd_prestat_get(fd, &mut stat) };
            if rc == ERRNO_BADF {
                break; // preopens are numbered contiguously from 3
            }
            if rc != 0 || stat.tag != 0 {
                continue;
            }
            let mut name = vec![0u8; stat.name_len];
            // SAFETY: `name` is writable for exactly `name.len()` bytes.
            let rc = unsafe { fd_prestat_dir_name(fd, name.as_mut_ptr(), name.len()) };
            if rc != 0 {
                continue;
            }
            let name = String::from_utf8_lossy(&name);
            let name = name.trim_end_matches('\0');
            let prefix = components(name);
            if prefix.len() <= wanted.len()
                && wanted.iter().zip(prefix.iter()).all(|(a, b)| a == b)
                && best.is_none_or(|(_, len)| prefix.len() > len)
            {
                best = Some((fd, prefix.len()));
            }
        }
        match best {
            Some((fd, len)) => {
                let rest = wanted[len..].join("/");
                Ok((
                    fd,
                    if rest.is_empty() {
                        ".".to_string()
                    } else {
                        rest
                    },
                ))
            }
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no preopened directory contains this path",
            )),
        }
    }

    pub fn symlink(target: &str, link: &str) -> io::Result<()> {
        let (dirfd, rel) = find_preopen(link)?;
        // SAFETY: both pointers are valid for the given lengths for the call.
        let rc = unsafe {
            path_symlink(
                target.as_ptr(),
                target.len(),
                dirfd,
                rel.as_ptr(),
                rel.len(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(errno(rc))
        }
    }
}

struct FileWriter;

impl Plugin for FileWriter {
    fn manifest() -> PluginManifest {
        PluginManifest::with_capabilities(
            CommandSpec::new("file-writer", "Writes files under ./out")
                .version("1.0.0")
                .arg(ArgSpec::positional("action").required().help(
                    "write | truncate | append | mkdir | remove | rename | hardlink | symlink | read",
                ))
                .arg(ArgSpec::positional("path").help("PATH, FROM or TARGET"))
                .arg(ArgSpec::positional("value").help("CONTENT, TO or LINK")),
            Capabilities::default()
                .with_fs_write(vec![PathPattern::new("./out").recursive()])
                .with_fs_read(vec![PathPattern::new("./data").recursive()])
                .with_stdio(StdioCapability::stdout_only()),
        )
    }

    fn execute(args: Vec<String>) -> ExecuteResult {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["write", path, content] => write(path, content),
            ["truncate", path] => truncate(path),
            ["append", path, content] => append(path, content),
            ["mkdir", path] => mkdir(path),
            ["remove", path] => remove(path),
            ["rename", from, to] => rename(from, to),
            ["hardlink", from, to] => hardlink(from, to),
            ["symlink", target, link] => symlink(target, link),
            ["read", path] => read(path),
            ["print", text] => {
                // To stdout, the stream it declares.
                println!("{text}");
                ExecuteResult::success("printed")
            }
            _ => ExecuteResult::user_error(USAGE),
        }
    }
}

export_plugin!(FileWriter);
