#!/usr/bin/env bash
# Writes warden's man pages (warden.1 and one page per command) into this folder,
# from the same command-line definition `warden --help` prints. Run it after changing
# a command's help; `cargo test` checks the pages here are current.
#
#   docs/man/generate.sh            # then: man -l docs/man/warden.1
#   sudo cp docs/man/*.1 /usr/local/share/man/man1/
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -f docs/man/*.1
cargo run --locked --quiet -- man-pages docs/man >/dev/null
ls docs/man/*.1
