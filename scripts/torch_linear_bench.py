#!/usr/bin/env python3
"""PyTorch's F.linear_cross_entropy forward+backward: the other side of the README's linear table.

    python3 scripts/torch_linear_bench.py --shape 1024x512x32000 [--threads 2] [--iters 3]
    python3 scripts/torch_linear_bench.py --shape 4096x256x128256 --memory chunked
    python3 scripts/torch_linear_bench.py --device cuda --shape 8192x4096x128256

With --device cuda the times are synchronised and each path also prints its peak CUDA memory
above what the inputs hold (torch.cuda.max_memory_allocated).

Shapes are NxDxC. Times PyTorch's chunked path (options=LinearCrossEntropyOptions()) and its
reference path (no options), interleaved, and prints the median ms of each. --memory PATH runs
one forward+backward of that path alone and prints its peak RSS growth (VmHWM after
/proc/self/clear_refs, Linux), in MiB: run it in a fresh process for each path.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def rss_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def inputs(n, d, c, device):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(n, d, generator=g) * 0.5).to(device).requires_grad_()
    w = (torch.randn(c, d, generator=g) * 0.05).to(device).requires_grad_()
    t = torch.randint(0, c, (n,), generator=g).to(device)
    return x, w, t


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def step(path, x, w, t):
    opts = torch.nn.LinearCrossEntropyOptions() if path == "chunked" else None
    loss = F.linear_cross_entropy(x, w, t, options=opts)
    loss.backward()
    x.grad, w.grad = None, None
    return loss.item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", required=True, help="NxDxC")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--memory", choices=["chunked", "reference"])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    n, d, c = (int(v) for v in a.shape.split("x"))
    x, w, t = inputs(n, d, c, a.device)
    if a.memory:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = rss_kib("VmRSS:")
        start = time.perf_counter()
        step(a.memory, x, w, t)
        secs = time.perf_counter() - start
        grown = (rss_kib("VmHWM:") - before) / 1024
        print(f"torch {torch.__version__} {a.memory} {a.shape}: peak RSS +{grown:.0f} MiB, {secs:.1f} s")
        return
    times = {"chunked": [], "reference": []}
    peak = {}
    for path in times:
        if a.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        step(path, x, w, t)
        sync(a.device)
        if a.device == "cuda":
            peak[path] = (torch.cuda.max_memory_allocated() - base) / 2**20
    for _ in range(a.iters):
        for path in times:
            start = time.perf_counter()
            step(path, x, w, t)
            sync(a.device)
            times[path].append((time.perf_counter() - start) * 1e3)
    where = f"{a.threads} threads" if a.device == "cpu" else torch.cuda.get_device_name()
    for path, ms in times.items():
        extra = f", peak +{peak[path]:.0f} MiB" if path in peak else ""
        print(f"torch {torch.__version__} {path} fwd+bwd {a.shape}: median {statistics.median(ms):.0f} ms "
              f"(min {min(ms):.0f}, max {max(ms):.0f}, {a.iters} runs, {where}{extra})")


if __name__ == "__main__":
    main()
