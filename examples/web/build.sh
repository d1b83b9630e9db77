#!/usr/bin/env bash
# Builds the browser demo into examples/web/pkg: the wasm example (examples/web/main.rs) and
# wasm-bindgen's JS glue for it. Then serve the repository and open the page:
#   examples/web/build.sh && python3 -m http.server 8000
#   chromium --enable-unsafe-webgpu http://localhost:8000/examples/web/
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli at Cargo.lock's wasm-bindgen.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --example web --target wasm32-unknown-unknown --no-default-features
wasm-bindgen --target web --no-typescript --out-dir examples/web/pkg \
    target/wasm32-unknown-unknown/release/examples/web.wasm
echo "built examples/web/pkg"
