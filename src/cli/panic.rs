//! What the `warden` binary does when warden itself panics: one line on stderr and
//! exit code 70 ([`EXIT_INTERNAL`]), never Rust's default 101, which a plugin may
//! return as its own code (the ABI's "system error").
//!
//! The hook ([`install_panic_hook`]) prints the line. On the main thread the panic
//! then unwinds to [`exit_code_of`], so the audit log's destructors still flush the
//! records already made (a run that panicked shows as a run without `run_end`); on
//! any other thread, which the main thread would not hear of, the hook exits the
//! process itself, with the same code.
//!
//! # Security
//!
//! A panic message can quote text a plugin or a log controls (a value that failed
//! an assertion): it is escaped with [`escape_line`] and printed as one line.

use super::CliError;
use super::escape::escape_line;
use std::any::Any;
use std::io::Write as _;
use std::panic::Location;

/// The exit code of a panic in warden (`EX_SOFTWARE`, the code of a trap).
pub const EXIT_INTERNAL: u8 = 70;

/// The one line the hook prints for a panic with `payload` at `location`.
pub fn panic_line(payload: &(dyn Any + Send), location: Option<&Location<'_>>) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let at = location.map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
    format!(
        "warden: internal error (a bug in warden, exit code {EXIT_INTERNAL}): {}{}; please report it",
        escape_line(message),
        escape_line(&at)
    )
}

/// Installs the hook: every panic prints [`panic_line`] to stderr; a panic off the
/// main thread also exits the process with [`EXIT_INTERNAL`] (the main thread's
/// panic unwinds to [`exit_code_of`], which returns that code).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let line = panic_line(info.payload(), info.location());
        // Straight to the stream: a panic must not depend on stdout/stderr capture.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        if std::thread::current().name() != Some("main") {
            std::process::exit(i32::from(EXIT_INTERNAL));
        }
    }));
}

/// Runs a command and returns the process's exit code: the command's own, or, with
/// its message printed to stderr, its error's; [`EXIT_INTERNAL`] when it panicked.
pub fn exit_code_of(command: impl FnOnce() -> Result<u8, CliError>) -> u8 {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(command)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("warden: {}", e.message);
            e.code
        }
        Err(_) => EXIT_INTERNAL,
    }
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
            line.contains(&format!("src/cli/panic.rs:{}", here.line())),
            "{line}"
        );
        let owned: Box<dyn Any + Send> = Box::new(String::from("owned message"));
        assert!(panic_line(owned.as_ref(), None).contains("owned message"));
        assert!(panic_line(&42u8, None).contains("(no message)"));
    }

    #[test]
    fn a_panicking_command_exits_70_and_an_error_with_its_code() {
        assert_eq!(exit_code_of(|| Ok(3)), 3);
        assert_eq!(exit_code_of(|| Err(CliError::new(66, "gone"))), 66);
        // The default hook runs here (tests do not install ours): it prints, no exit.
        assert_eq!(
            exit_code_of(|| -> Result<u8, CliError> { panic!("a bug") }),
            70
        );
    }
}
