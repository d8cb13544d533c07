//! A small application that embeds warden: it loads every plugin of
//! `examples/plugins/` under `policies/examples.toml` and runs the one its first
//! argument names, with the rest as the plugin's arguments.
//!
//! ```sh
//! cargo run --example host -- hello            # Hello, World!
//! cargo run --example host -- hello Ada        # Hello, Ada!
//! cargo run --example host                     # lists the commands
//! ```
//!
//! Plugins run in confined worker processes started from this very executable:
//! `main` hands such a start to [`warden::worker::main_if_worker`] before anything
//! else.
//!
//! Relative paths (file-reader's `./data`) resolve against the current directory; the
//! audit records go to warden's default log (`$WARDEN_AUDIT_LOG`, else
//! `~/.local/state/warden/audit.jsonl`).

use std::path::Path;
use std::process::ExitCode;
use warden::abi::ExecuteResult;
use warden::escape::{escape_line, escape_text};
use warden::host::{CommandStatus, Registry, RegistryError, Warden};

fn main() -> ExitCode {
    // First thing: when warden starts this executable as a confined worker for a
    // plugin (`isolation = "process"`, the default), it becomes that worker here.
    warden::worker::main_if_worker();
    match run() {
        Ok(code) => ExitCode::from(code),
        Err((code, message)) => {
            eprintln!("host: {}", escape_line(&message));
            ExitCode::from(code)
        }
    }
}

fn run() -> Result<u8, (u8, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let warden = Warden::builder()
        .policy_file(root.join("policies/examples.toml"))
        // Calls in flight at once, over every plugin of the registry: this
        // application makes one call; a server sizes it for the calls it keeps in
        // flight (each holds one worker, or one engine slot in process). Calls past it
        // wait their turn within their own timeout.
        .max_concurrent_calls(4)
        .build()
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    let registry = Registry::open(warden, root.join("examples/plugins"))
        .map_err(|e| (e.exit_code(), e.to_string()))?;

    let mut argv = std::env::args().skip(1);
    let Some(command) = argv.next() else {
        println!("usage: host COMMAND [ARGS...]\n\ncommands:");
        for c in registry.commands() {
            let status = match &c.status {
                CommandStatus::Ready => String::new(),
                CommandStatus::Refused(why) => format!(" (refused: {why})"),
                CommandStatus::Failed(why) => format!(" (failed: {why})"),
            };
            println!(
                "  {:<12} {}{}",
                escape_line(&c.name),
                escape_line(&c.about),
                escape_line(&status)
            );
        }
        return Ok(0);
    };
    let args: Vec<String> = argv.collect();
    // An unknown command is a usage error (2) that lists the known ones.
    let report = registry
        .call(&command, &args)
        .map_err(|e: RegistryError| (e.exit_code(), escape_line(&e.to_string())))?;
    registry
        .warden()
        .flush()
        .map_err(|e| (e.exit_code(), e.to_string()))?;
    let code = report.exit_code();
    match report.result {
        // What a plugin says is escaped before it reaches the terminal.
        Ok(ExecuteResult::Success(text)) => println!("{}", escape_text(&text)),
        Ok(ExecuteResult::Error(e)) => {
            eprintln!("{}: {}", escape_line(&command), escape_text(&e.message))
        }
        Ok(ExecuteResult::Effect(_)) => eprintln!("{command}: asked for a host effect"),
        Err(e) => return Err((e.exit_code(), e.to_string())),
    }
    Ok(code)
}
