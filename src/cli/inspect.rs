//! `warden inspect`: what a plugin declares, without running `plugin_execute`.

use super::CliError;
use super::escape::{escape_line, escape_text, json_text};
use super::host_failure;
use std::fmt::Write as _;
use std::path::PathBuf;
use warden::abi::{CommandSpec, PluginManifest};
use warden::host::{Inspection, Warden};

/// Arguments of `warden inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The plugin module.
    #[arg(value_name = "PLUGIN.wasm")]
    pub plugin: PathBuf,
}

pub(super) fn inspect(args: InspectArgs) -> Result<u8, CliError> {
    // Read-only: no records, the default limits, the compiled-module cache.
    let warden = Warden::builder()
        .without_audit()
        .build()
        .map_err(|e| host_failure(&e))?;
    let Inspection { manifest, sha256 } =
        warden.inspect(&args.plugin).map_err(|e| host_failure(&e))?;
    let sha256 = hex::encode(sha256);
    if args.json {
        let m = &manifest;
        let value = serde_json::json!({
            "file": args.plugin.display().to_string(),
            "sha256": sha256,
            "api_version": m.api_version,
            "name": m.command.name,
            "version": m.command.version,
            "about": m.command.about,
            "author": m.command.author,
            "args": m.command.args,
            "subcommands": m.command.subcommands,
            "capabilities": m.capabilities,
        });
        println!("{}", json_text(&value, true));
    } else {
        print!("{}", render_text(&args.plugin, &sha256, &manifest));
    }
    Ok(0)
}

fn render_text(path: &std::path::Path, sha256: &str, m: &PluginManifest) -> String {
    let mut out = String::new();
    let c = &m.command;
    let _ = writeln!(
        out,
        "file:        {}",
        escape_line(&path.display().to_string())
    );
    let _ = writeln!(out, "sha256:      {sha256}");
    let _ = writeln!(out, "api_version: {}", m.api_version);
    let _ = writeln!(out, "name:        {}", escape_line(&c.name));
    let _ = writeln!(
        out,
        "version:     {}",
        escape_line(c.version.as_deref().unwrap_or("-"))
    );
    let _ = writeln!(out, "about:       {}", escape_line(&c.about));
    if let Some(author) = &c.author {
        let _ = writeln!(out, "author:      {}", escape_line(author));
    }
    render_args(&mut out, c, "");
    let caps = &m.capabilities;
    let _ = writeln!(out, "capabilities:");
    if caps.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (kind, list) in [("fs_read", &caps.fs_read), ("fs_write", &caps.fs_write)] {
        for p in list {
            let _ = writeln!(
                out,
                "  {kind:<9} {}{}",
                escape_line(&p.pattern),
                if p.recursive { " (recursive)" } else { "" }
            );
        }
    }
    for e in &caps.env_read {
        let _ = writeln!(out, "  env       {}", escape_line(e));
    }
    for n in &caps.net {
        let _ = writeln!(
            out,
            "  net       {}",
            escape_line(&warden::net::pattern::declared_url(n))
        );
    }
    let s = caps.stdio;
    for (name, on) in [
        ("stdin", s.stdin),
        ("stdout", s.stdout),
        ("stderr", s.stderr),
    ] {
        if on {
            let _ = writeln!(out, "  stdio     {name}");
        }
    }
    escape_text(&out).into_owned()
}

fn render_args(out: &mut String, c: &CommandSpec, indent: &str) {
    if !c.args.is_empty() {
        let _ = writeln!(out, "{indent}args:");
        for a in &c.args {
            let long = a
                .long
                .as_deref()
                .map(|l| format!(" --{}", escape_line(l)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{indent}  {}{long}{}  {}",
                escape_line(&a.name),
                if a.required { " (required)" } else { "" },
                escape_line(&a.help)
            );
        }
    }
    for sub in &c.subcommands {
        let _ = writeln!(
            out,
            "{indent}subcommand {}: {}",
            escape_line(&sub.name),
            escape_line(&sub.about)
        );
        render_args(out, sub, &format!("{indent}  "));
    }
}
