//! The escape simulator (cargo feature `escape-simulator`, tests only): host imports
//! that let a guest do what code that escaped wasm could, natively, in the process
//! that runs the guest.
//!
//! | import (`warden_escape`) | signature (all i32) | does |
//! |---|---|---|
//! | `open` | `(path_ptr, path_len, write) -> errno` | `open(path, write ? O_WRONLY\|O_CREAT : O_RDONLY)`, then closes it |
//! | `exec` | `(path_ptr, path_len) -> errno` | runs `path` (fork and `execve`, keeping this process's streams), killing it at once if it started |
//! | `connect` | `(host_ptr, host_len, port) -> errno` | a TCP connect to the IP literal and port |
//! | `write_fd` | `(fd, ptr, len) -> errno` | `write(fd, bytes)` |
//! | `parent_pid` | `() -> pid` | `getppid()`: the process that started this one |
//! | `kill` | `(pid, sig) -> errno` | `kill(pid, sig)` |
//! | `ptrace_attach` | `(pid) -> errno` | `ptrace(PTRACE_ATTACH, pid)`, detaching at once if it worked |
//! | `abort` | `()` | `abort()`: the process dies of `SIGABRT`, as a crash would end it |
//!
//! Each returns 0 or the errno (positive), except `parent_pid` and `abort`. Under
//! `isolation = "process"` these run in the confined worker, where the kernel refuses
//! what the policy did not grant; under `isolation = "in-process"` they run in warden's
//! own process and succeed wherever the user could: the tests show that the wall, not
//! luck, stops an escape.
//!
//! # Security
//!
//! This module is the hole it simulates. It is compiled only with the feature, which
//! is never on by default, and a build without debug assertions refuses the feature.

#![allow(unsafe_code)]

#[cfg(not(debug_assertions))]
compile_error!(
    "the `escape-simulator` feature gives plugins raw system calls: it is for debug test builds only"
);

use super::store::StoreState;
use wasmtime::{Caller, Extern, Linker};

/// The import module of the simulated escape.
pub const MODULE: &str = "warden_escape";

/// `EFAULT`: the guest's pointer or length is not in its memory.
const EFAULT: i32 = 14;

fn guest_bytes(caller: &mut Caller<'_, StoreState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return None;
    };
    let start = usize::try_from(ptr as u32).ok()?;
    let end = start.checked_add(usize::try_from(len as u32).ok()?)?;
    memory.data(&*caller).get(start..end).map(<[u8]>::to_vec)
}

fn guest_text(caller: &mut Caller<'_, StoreState>, ptr: i32, len: i32) -> Option<String> {
    String::from_utf8(guest_bytes(caller, ptr, len)?).ok()
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn last_errno() -> i32 {
    errno_of(&std::io::Error::last_os_error())
}

/// A crash: the process dies of `SIGABRT` (no unwinding, no cleanup, no core file in
/// a worker).
fn abort(_: Caller<'_, StoreState>) {
    std::process::abort()
}

/// Adds the `warden_escape` functions to `linker`.
///
/// # Errors
///
/// When wasmtime refuses a definition.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "open",
        |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32, write: i32| -> i32 {
            let Some(path) = guest_text(&mut caller, ptr, len) else {
                return EFAULT;
            };
            let mut options = std::fs::OpenOptions::new();
            if write != 0 {
                options.write(true).create(true);
            } else {
                options.read(true);
            }
            // Raw, following symlinks: what an escaped plugin would do, not what
            // warden does (`warden::files`).
            #[allow(clippy::disallowed_methods)]
            let opened = options.open(&path);
            match opened {
                Ok(_file) => 0,
                Err(e) => errno_of(&e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "exec",
        |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32| -> i32 {
            let Some(path) = guest_text(&mut caller, ptr, len) else {
                return EFAULT;
            };
            // The child keeps this process's streams: opening `/dev/null` for it
            // would be refused first (Landlock) and hide what `execve` itself does.
            match std::process::Command::new(&path).spawn() {
                Ok(mut child) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    0
                }
                Err(e) => errno_of(&e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "connect",
        |mut caller: Caller<'_, StoreState>, ptr: i32, len: i32, port: i32| -> i32 {
            let Some(host) = guest_text(&mut caller, ptr, len) else {
                return EFAULT;
            };
            let Ok(ip) = host.parse::<std::net::IpAddr>() else {
                return libc::EINVAL;
            };
            let Ok(port) = u16::try_from(port) else {
                return libc::EINVAL;
            };
            match std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::new(ip, port),
                std::time::Duration::from_secs(2),
            ) {
                Ok(_stream) => 0,
                Err(e) => errno_of(&e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "write_fd",
        |mut caller: Caller<'_, StoreState>, fd: i32, ptr: i32, len: i32| -> i32 {
            let Some(bytes) = guest_bytes(&mut caller, ptr, len) else {
                return EFAULT;
            };
            // SAFETY: a raw write to a descriptor the guest names is what this
            // simulator exists to do (an escaped plugin could); the buffer is ours.
            let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if written < 0 { last_errno() } else { 0 }
        },
    )?;
    linker.func_wrap(MODULE, "parent_pid", || -> i32 {
        // SAFETY: `getppid` takes nothing and cannot fail.
        unsafe { libc::getppid() }
    })?;
    linker.func_wrap(MODULE, "kill", |pid: i32, sig: i32| -> i32 {
        // SAFETY: sending a signal touches no memory of ours; which process and
        // signal is the guest's choice, as it would be an escaped attacker's.
        if unsafe { libc::kill(pid, sig) } < 0 {
            last_errno()
        } else {
            0
        }
    })?;
    linker.func_wrap(MODULE, "ptrace_attach", |pid: i32| -> i32 {
        // SAFETY: `PTRACE_ATTACH` and `PTRACE_DETACH` take no pointers of ours (the
        // address and data arguments are null); the wait is for the tracee's stop.
        unsafe {
            let null = std::ptr::null_mut::<libc::c_void>();
            if libc::ptrace(libc::PTRACE_ATTACH, pid, null, null) < 0 {
                return last_errno();
            }
            let mut status = 0;
            libc::waitpid(pid, &mut status, libc::__WALL);
            libc::ptrace(libc::PTRACE_DETACH, pid, null, null);
        }
        0
    })?;
    linker.func_wrap(MODULE, "abort", abort)?;
    Ok(())
}
