//! warden's own diagnostics on stderr: the `tracing` events of the library (a cache
//! entry ignored, a load that could not record its end, a rotated file that could not
//! be deleted), filtered by `WARDEN_LOG`, else `RUST_LOG`, else `warn`.
//!
//! # Security
//!
//! A diagnostic can carry text a plugin or a file controls (a path, an error): every
//! line passes [`escape_line`] on its way to the terminal, like every other line
//! warden prints. Diagnostics never reach stdout (a plugin's output) or the audit log
//! (whose records are written through its own dispatcher, not this one).

use super::escape::escape_line;
use tracing_subscriber::EnvFilter;

/// The variables read for the filter, in order.
pub const FILTER_VARIABLES: [&str; 2] = ["WARDEN_LOG", "RUST_LOG"];

/// Installs the subscriber for the rest of the process. An unreadable filter falls
/// back to `warn` and says so.
pub fn install() {
    let wanted = FILTER_VARIABLES.iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*name, v))
    });
    let (filter, bad) = match &wanted {
        Some((name, text)) => match EnvFilter::try_new(text) {
            Ok(filter) => (filter, None),
            Err(e) => (
                EnvFilter::new("warn"),
                Some(format!("{name}: {e}; using `warn`")),
            ),
        },
        None => (EnvFilter::new("warn"), None),
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| EscapedStderr)
        .without_time()
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_ok()
        && let Some(bad) = bad
    {
        tracing::warn!("{bad}");
    }
}

/// stderr, one escaped line at a time.
struct EscapedStderr;

impl std::io::Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut err = std::io::stderr().lock();
        for line in text.lines() {
            writeln!(err, "warden: {}", escape_line(line.trim_start()))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
