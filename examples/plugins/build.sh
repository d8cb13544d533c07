#!/usr/bin/env bash
# Builds the example plugins for wasm32-wasip1 and copies them to
# examples/plugins/<name>.wasm. Works from any current directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target=wasm32-wasip1
plugins=(hello file-reader file-writer fetcher)

if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
fi

cd "$here"
cargo build --release --target "$target" -j2 --locked

target_dir="${CARGO_TARGET_DIR:-$here/target}"
for name in "${plugins[@]}"; do
    # cargo names cdylib outputs after the crate's lib name (dashes -> underscores)
    src="$target_dir/$target/release/${name//-/_}.wasm"
    cp "$src" "$here/$name.wasm"
    chmod 644 "$here/$name.wasm"
    echo "built $here/$name.wasm ($(wc -c <"$here/$name.wasm") bytes)"
done
