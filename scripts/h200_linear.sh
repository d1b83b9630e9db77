#!/usr/bin/env bash
# linear_cross_entropy's GPU check (issue 14), prepared for one run of a few minutes on a lent
# NVIDIA H200 (the `device` tool): xent's matmul and linear ops through Vulkan on the NVIDIA
# driver (matmul.wgsl: GPUs take the portable kernel), then PyTorch CUDA's
# F.linear_cross_entropy, chunked and reference paths (scripts/torch_linear_bench.py), at the
# issue's N=8192, D=4096, C=128256.
#
# Run from the repository root on the device machine, with `carry` naming
#   target/release/xent   (built here: x86-64, release)
#   .gl                   (the Vulkan/EGL loader .debs, see the device tool's README)
# Results land in $OUT (info.txt, xent.txt, xent_matmul.txt, torch.txt).
set -uo pipefail
. scripts/device_env.sh
timeout 30 target/release/xent info > "$OUT/info.txt" 2>&1
timeout 120 target/release/xent bench --op matmul --shape 8192x128256x4096 --iters 3 --warmup 1 \
    > "$OUT/xent_matmul.txt" 2>&1
timeout 240 target/release/xent bench --op linear-cross-entropy --op linear-cross-entropy-grad \
    --shape 8192x4096x128256 --iters 3 --warmup 1 > "$OUT/xent.txt" 2>&1
timeout 120 python3 scripts/torch_linear_bench.py --device cuda --shape 8192x4096x128256 --iters 5 \
    > "$OUT/torch.txt" 2>&1
tail -n 20 "$OUT/info.txt" "$OUT/xent_matmul.txt" "$OUT/xent.txt" "$OUT/torch.txt" 2>/dev/null
