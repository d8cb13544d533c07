//! warden's exit codes, in one place: the `warden` command exits with them, and the
//! library's errors report them ([`crate::host::HostError::exit_code`],
//! [`crate::runtime::RuntimeError::exit_code`], [`crate::audit::AuditError::exit_code`],
//! [`crate::runtime::RunReport::exit_code`]), so an application that embeds warden can
//! exit as the command line would, and scripts read the same codes from both.
//!
//! The codes below 100 are the BSD `sysexits.h` ones where one fits (`EX_DATAERR`,
//! `EX_NOINPUT`, `EX_SOFTWARE`, `EX_IOERR`, `EX_NOPERM`, `EX_CONFIG`); 124 is what
//! `timeout(1)` gives a command that ran out of time. A plugin's own code passes through
//! [`plugin_code`], so it never claims to be one of these.
//!
//! This module also holds what a program does when warden itself panics
//! ([`install_panic_hook`], [`catch_panic`]): one escaped line on stderr and
//! [`INTERNAL`], never Rust's default 101, which a plugin may return as its own code
//! (the ABI's "system error").
//!
//! # Security
//!
//! A panic message can quote text a plugin or a log controls (a value that failed an
//! assertion): the hook escapes it with [`crate::escape::escape_line`] and makes
//! it one line.

use crate::escape::escape_line;
use std::any::Any;
use std::io::Write as _;
use std::panic::Location;

/// Success; for `run`, the plugin returned `Success`.
pub const SUCCESS: u8 = 0;
/// The plain failure: `policy check` found errors, `audit verify` a break; also a
/// plugin's `Error` whose own code cannot be used ([`plugin_code`]).
pub const FAILURE: u8 = 1;
/// A bad command line (clap's own code), an unknown command of a
/// [`crate::host::Registry`], arguments past the input limit, a bad `--since`.
pub const USAGE: u8 = 2;
/// The plugin is not valid: not wasm, a missing export, a manifest that does not
/// decode, a pointer outside memory; a file read as an audit log is not one
/// (`EX_DATAERR`).
pub const INVALID_PLUGIN: u8 = 65;
/// A file or directory warden was given cannot be read, a file it writes cannot be
/// written safely, or the sandbox cannot be built (`EX_NOINPUT`).
pub const NO_INPUT: u8 = 66;
/// The plugin trapped (`EX_SOFTWARE`); the same code as [`INTERNAL`].
pub const TRAP: u8 = 70;
/// warden itself failed: a bug (`EX_SOFTWARE`); the same code as [`TRAP`].
pub const INTERNAL: u8 = 70;
/// The audit log cannot be opened, locked or written: nothing ran, or the run's
/// records could not be made durable (`EX_IOERR`).
pub const AUDIT: u8 = 74;
/// Refused by the policy (`on_denied = "refuse"`, a `sha256` mismatch, a stale
/// policy, an effect the plugin cannot be resumed from) (`EX_NOPERM`).
pub const REFUSED: u8 = 77;
/// The policy is invalid or fails its ownership checks: nothing ran (`EX_CONFIG`).
pub const POLICY_INVALID: u8 = 78;
/// The wall-clock limit ran out (as `timeout(1)`).
pub const TIMEOUT: u8 = 124;
/// Another limit ran out: fuel, memory, table, stack, output size.
pub const LIMIT: u8 = 125;

/// The codes warden itself gives a run, which a plugin's own code never takes
/// ([`plugin_code`]).
pub const WARDEN_CODES: [u8; 9] = [
    USAGE,
    INVALID_PLUGIN,
    NO_INPUT,
    TRAP,
    AUDIT,
    REFUSED,
    POLICY_INVALID,
    TIMEOUT,
    LIMIT,
];

/// The exit code of a plugin's `Error { code }`: the plugin's own code when it is in
/// 1-125 and not one of [`WARDEN_CODES`], else [`FAILURE`]. So 0 never claims
/// success, warden's own codes never claim that warden refused or that nothing ran,
/// and 126-255 never look like what a shell reports (126 not executable, 127 not
/// found, 128+N killed by signal N). The plugin's code itself is in its result
/// (`run --json`).
pub fn plugin_code(code: u8) -> u8 {
    if !(1..=125).contains(&code) || WARDEN_CODES.contains(&code) {
        FAILURE
    } else {
        code
    }
}

/// The one line the hook prints for a panic with `payload` at `location`.
fn panic_line(payload: &(dyn Any + Send), location: Option<&Location<'_>>) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let at = location.map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
    format!(
        "warden: internal error (a bug in warden, exit code {INTERNAL}): {}{}; please report it",
        escape_line(message),
        escape_line(&at)
    )
}

/// Installs the hook of the `warden` binary: every panic prints one escaped line to
/// stderr; a panic off the main thread also exits the process with [`INTERNAL`] (the
/// main thread's panic unwinds to [`catch_panic`], which returns that code, so the
/// audit log's destructors still flush the records already made).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let line = panic_line(info.payload(), info.location());
        // Straight to the stream: a panic must not depend on stdout/stderr capture.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        if std::thread::current().name() != Some("main") {
            std::process::exit(i32::from(INTERNAL));
        }
    }));
}

/// Runs `command` and returns its exit code, or [`INTERNAL`] when it panicked.
pub fn catch_panic(command: impl FnOnce() -> u8) -> u8 {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(command)).unwrap_or(INTERNAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_one_escaped_line_with_its_place() {
        let here = Location::caller();
        let line = panic_line(&"boom\n\u{1b}[32mok: \u{202e}", Some(here));
        assert!(!line.contains('\n') && !line.contains('\u{1b}') && !line.contains('\u{202e}'));
        assert!(line.starts_with("warden: internal error"), "{line}");
        assert!(line.contains("boom"), "{line}");
        assert!(
            line.contains(&format!("src/exit.rs:{}", here.line())),
            "{line}"
        );
        let owned: Box<dyn Any + Send> = Box::new(String::from("owned message"));
        assert!(panic_line(owned.as_ref(), None).contains("owned message"));
        assert!(panic_line(&42u8, None).contains("(no message)"));
    }

    #[test]
    fn a_panicking_command_exits_70() {
        assert_eq!(catch_panic(|| 3), 3);
        // The default hook runs here (tests do not install ours): it prints, no exit.
        assert_eq!(catch_panic(|| panic!("a bug")), 70);
    }

    #[test]
    fn a_plugin_code_never_takes_one_of_wardens() {
        assert_eq!(plugin_code(0), FAILURE);
        assert_eq!(plugin_code(3), 3);
        assert_eq!(plugin_code(101), 101);
        for code in WARDEN_CODES.into_iter().chain([126, 127, 128, 255]) {
            assert_eq!(plugin_code(code), FAILURE, "{code}");
        }
    }
}
