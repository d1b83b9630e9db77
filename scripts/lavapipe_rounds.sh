#!/usr/bin/env bash
# Interleaved rounds of `xent bench` (lavapipe) and PyTorch's CPU kernels on the same 2 threads,
# for the README's performance table: each round runs xent, then PyTorch, on the same shapes.
# Usage: scripts/lavapipe_rounds.sh ROUNDS OUT_DIR   (then scripts/rounds_summary.py OUT_DIR)
# Needs target/release/xent, the shared checkout beside this one (../shared/anchors) and torch.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
out=${2:-/tmp/xent-rounds}
mkdir -p "$out"
shapes=(--shape 1024x32000 --shape 8192x4096 --shape 64x262144)
export NODEVICE_SELECT=1
for r in $(seq 1 "$rounds"); do
    WGPU_BACKEND=vulkan target/release/xent bench --op cross-entropy --op cross-entropy-grad \
        --op log-softmax --op copy "${shapes[@]}" --iters 10 --warmup 2 \
        --json "$out/xent-$r.json" >/dev/null 2>&1
    python3 scripts/torch_bench.py --device cpu --threads 2 "${shapes[@]}" \
        --iters 10 --json "$out/torch-$r.json" >/dev/null 2>&1
    echo "round $r of $rounds done"
done
