//! The worker confining itself, on its only thread, before any guest code runs:
//! process hardening, Landlock, then seccomp-bpf.
//!
//! - **Hardening**: `PR_SET_NO_NEW_PRIVS` (nothing it runs gains privileges, and
//!   unprivileged seccomp needs it), `PR_SET_DUMPABLE` 0 (no core dump, no ptrace
//!   attach by the same user, `/proc/<pid>` of it owned by root), `RLIMIT_CORE` 0.
//! - **Landlock** (the Landlock project's `landlock` crate, best effort up to the
//!   running kernel's ABI): filesystem access only beneath the granted directories,
//!   read-only grants for reading, read-write grants also to write, create, remove,
//!   truncate and rename within; one read rule on the worker's own
//!   `/proc/self/pagemap`, which wasmtime's pool reads to reset memory slots cheaply;
//!   nothing else, not `/proc`, not the plugin file, not the cache. No TCP bind or
//!   connect (ABI 4). No signals and no abstract Unix sockets outside the worker
//!   (ABI 6).
//! - **seccomp-bpf** (rust-vmm's `seccompiler`): `EPERM` for every system call a
//!   plugin never needs ([`DENIED`]): new sockets, exec, ptrace and the other
//!   cross-process calls, mount and namespaces, bpf, perf, userfaultfd, io_uring,
//!   keyrings, modules, kexec, reboot, setting clocks, personality, handles, and
//!   `ioctl(TIOCSTI)`. A deny list, not an allow list: wasmtime, the allocator and the
//!   C library use a wide and changing set of calls (`mmap` flavours, `madvise`,
//!   `membarrier`, `rseq`, `clone3`, ...), and an allow list that broke on the next
//!   glibc or wasmtime would be turned off by its users.
//!
//! What each step achieved becomes the run's [`Confinement`].
//!
//! # Security
//!
//! Order matters: the hardening first, then Landlock on the descriptors the parent
//! opened and checked, then the filter (which refuses what Landlock's setup itself
//! does not need). Only then does the worker build its engine, whose threads inherit
//! all three.

use crate::confinement::{Confinement, Enforcement, Status};
use crate::policy::Isolation;
use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, LandlockStatus, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;
use std::os::fd::AsFd;

/// The newest Landlock ABI whose rights warden asks for; the crate drops what the
/// running kernel lacks (best effort) and reports it.
const ASKED_ABI: ABI = ABI::V6;

/// The system calls the worker refuses with `EPERM`.
pub const DENIED: &[(&str, i64)] = &[
    ("socket", libc::SYS_socket),
    ("socketpair", libc::SYS_socketpair),
    ("execve", libc::SYS_execve),
    ("execveat", libc::SYS_execveat),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("kcmp", libc::SYS_kcmp),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("keyctl", libc::SYS_keyctl),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("reboot", libc::SYS_reboot),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("personality", libc::SYS_personality),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("vhangup", libc::SYS_vhangup),
];

/// `clone` flags that make new namespaces; a `clone` with any of them is refused.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// `PR_SET_NO_NEW_PRIVS`, not dumpable, no core files.
///
/// # Errors
///
/// The first `prctl`/`setrlimit` that fails.
pub fn harden_process() -> std::io::Result<()> {
    rustix::thread::set_no_new_privs(true)?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    Ok(())
}

/// A granted directory, as the worker received it.
pub struct GrantedDir<'a, F: AsFd> {
    /// Its descriptor, opened and checked by the parent.
    pub fd: &'a F,
    /// Whether the plugin may write in it.
    pub writable: bool,
}

/// Confines the calling thread (and every thread it creates later) to `dirs` and
/// installs `filter` (from [`syscall_filter`], compiled ahead, while the worker
/// waits for its setup), and says what the kernel enforced. `no_landlock` (tests
/// only) behaves as a kernel without Landlock would.
pub fn confine<F: AsFd>(
    dirs: &[GrantedDir<'_, F>],
    no_landlock: bool,
    filter: Result<BpfProgram, String>,
) -> Confinement {
    let (abi, fs) = if no_landlock {
        (
            0,
            Enforcement::because(
                Status::Unsupported,
                "the kernel has no Landlock (simulated for a test)",
            ),
        )
    } else {
        match landlock(dirs) {
            Ok(done) => done,
            Err(e) => (
                0,
                Enforcement::because(Status::Unsupported, format!("Landlock failed: {e}")),
            ),
        }
    };
    let syscalls = match filter
        .and_then(|program| seccompiler::apply_filter(&program).map_err(|e| e.to_string()))
    {
        Ok(()) => Enforcement::enforced(),
        Err(e) => Enforcement::because(
            Status::Unsupported,
            format!("the seccomp filter could not be installed: {e}"),
        ),
    };
    // Sockets: the filter refuses every new one; Landlock (ABI 4) refuses TCP bind and
    // connect besides.
    let net = match (syscalls.status, abi >= 4) {
        (Status::Enforced, _) => Enforcement::enforced(),
        (_, true) => Enforcement::because(
            Status::Partial,
            "TCP bind and connect only (Landlock): without the syscall filter other sockets are open to it",
        ),
        _ => Enforcement::because(
            Status::Unsupported,
            "neither the syscall filter nor Landlock TCP rules (ABI 4) are available",
        ),
    };
    Confinement {
        isolation: Isolation::Process,
        landlock_abi: abi,
        fs,
        net,
        syscalls,
    }
}

/// Applies the Landlock ruleset; the ABI used and what it means for the filesystem.
fn landlock<F: AsFd>(dirs: &[GrantedDir<'_, F>]) -> Result<(u8, Enforcement), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let mut read = AccessFs::from_read(ASKED_ABI);
    read.remove(AccessFs::Execute);
    let mut write: BitFlags<AccessFs> = AccessFs::from_all(ASKED_ABI);
    write.remove(AccessFs::Execute);
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(ASKED_ABI))
        .map_err(|e| fail(&e))?
        .handle_access(AccessNet::from_all(ASKED_ABI))
        .map_err(|e| fail(&e))?
        .scope(Scope::from_all(ASKED_ABI))
        .map_err(|e| fail(&e))?
        .create()
        .map_err(|e| fail(&e))?;
    for dir in dirs {
        let access = if dir.writable { write } else { read };
        ruleset = ruleset
            .add_rule(PathBeneath::new(dir.fd.as_fd(), access))
            .map_err(|e| fail(&e))?;
    }
    // wasmtime's pool resets memory slots through this file (PAGEMAP_SCAN); without
    // it every call pays a slower reset. The worker's own, resolved now.
    if let Ok(pagemap) = PathFd::new("/proc/self/pagemap") {
        ruleset = ruleset
            .add_rule(PathBeneath::new(pagemap, AccessFs::ReadFile))
            .map_err(|e| fail(&e))?;
    }
    let status = ruleset.restrict_self().map_err(|e| fail(&e))?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as i32,
        _ => 0,
    };
    let abi = u8::try_from(abi).unwrap_or(0);
    let fs = match (status.ruleset, abi) {
        (RulesetStatus::NotEnforced, _) | (_, 0) => Enforcement::because(
            Status::Unsupported,
            "the kernel has no Landlock, or it is not enabled",
        ),
        (_, 1 | 2) => Enforcement::because(
            Status::Partial,
            format!(
                "Landlock ABI {abi} cannot refuse truncating files (ABI 3){}",
                if abi == 1 {
                    " or moving files between directories (ABI 2)"
                } else {
                    ""
                }
            ),
        ),
        _ => Enforcement::enforced(),
    };
    Ok((abi, fs))
}

/// The seccomp-bpf program: `EPERM` for [`DENIED`], `ioctl(TIOCSTI)` and `clone` into
/// new namespaces; everything else allowed.
///
/// # Errors
///
/// When the architecture is not one seccompiler knows, or compiling fails.
pub fn syscall_filter() -> Result<BpfProgram, String> {
    let rule = |conditions| SeccompRule::new(conditions).map_err(|e| e.to_string());
    let condition =
        |arg, len, op, value| SeccompCondition::new(arg, len, op, value).map_err(|e| e.to_string());
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    // `TIOCSTI`'s type is the C library's `Ioctl`, which differs between targets.
    #[allow(clippy::unnecessary_cast)]
    let tiocsti = libc::TIOCSTI as u64;
    rules.insert(
        libc::SYS_ioctl,
        vec![rule(vec![condition(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            tiocsti,
        )?])?],
    );
    let mut clone_rules = Vec::new();
    for flag in NAMESPACE_FLAGS {
        let flag = flag as u64;
        clone_rules.push(rule(vec![condition(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?])?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_for_this_machine() {
        let program = syscall_filter().unwrap();
        assert!(
            program.len() > DENIED.len(),
            "{} instructions",
            program.len()
        );
    }
}
