#!/usr/bin/env bash
# The performance issue's GPU check, prepared for one run of at most 5 minutes on a lent
# NVIDIA H200 (the `device` tool): xent bench through Vulkan on the NVIDIA driver, then
# PyTorch's CUDA kernels (../shared/anchors/torch_bench.py, copied beside this script by the
# caller as scripts/torch_bench.py, since ../shared does not travel) on the same shapes.
#
# Run from the repository root on the device machine, with `carry` naming
#   target/release/xent   (built here: x86-64, release)
#   .gl                   (the Vulkan/EGL loader .debs, see the device tool's README)
# Results land in $OUT (xent.json, xent.txt, torch.json, torch.txt, info.txt).
set -uo pipefail
. scripts/device_env.sh
SHAPES="--shape 1024x32000 --shape 8192x4096 --shape 64x262144 --shape 4096x131072"
timeout 30 target/release/xent info > "$OUT/info.txt" 2>&1
timeout 150 target/release/xent bench --op cross-entropy --op cross-entropy-grad --op log-softmax \
    --op copy $SHAPES --iters 20 --warmup 3 --json "$OUT/xent.json" > "$OUT/xent.txt" 2>&1
if [ -f scripts/torch_bench.py ]; then
    timeout 90 python3 scripts/torch_bench.py --device cuda $SHAPES --iters 20 \
        --json "$OUT/torch.json" > "$OUT/torch.txt" 2>&1
fi
tail -n 30 "$OUT/xent.txt" "$OUT/torch.txt" 2>/dev/null
