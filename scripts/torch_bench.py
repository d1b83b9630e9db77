#!/usr/bin/env python3
"""Time PyTorch's own softmax-family ops on the shapes `xent bench` uses, to compare side by side.

Usage:
    python3 scripts/torch_bench.py [--device cpu|cuda] [--threads T] [--shape NxC ...]
                                   [--op OP ...] [--dtype f32|f16|bf16] [--iters K] [--warmup W]
                                   [--small] [--json OUT]

    e.g. python3 scripts/torch_bench.py --device cpu --threads 2 --shape 1024x32000 \
             --shape 8192x4096 --shape 64x262144 --iters 10 --json torch.json
         python3 scripts/torch_bench.py --device cpu --threads 2 --small

Ops (named as in `xent bench`; default: cross-entropy, cross-entropy-grad, log-softmax, copy):
    cross-entropy       F.cross_entropy(x, t)                   forward, reduction mean
    cross-entropy-grad  F.cross_entropy(x, t).backward()        forward + backward (x.grad reset)
    nll-loss            F.nll_loss(x, t)
    log-softmax         F.log_softmax(x, 1)
    softmax             F.softmax(x, 1)
    copy                x.clone()                               the memory roofline

x is N x C standard normal logits in --dtype (float32 by default), t uniform int64 class indices.
Each op runs W untimed times, then K timed ones; the median, min and max wall time of a call are
reported (on cuda each call is followed by a synchronize, and kernel_median_ms is the median of
CUDA events around it). GB/s is the logits' bytes over the median time, as `xent bench` counts it.

--small measures small-batch latency instead: cross-entropy-grad at 64x10, 1437x10 and 4096x100,
1000 timed calls after 100 warm-up calls, in microseconds (--shape, --op, --iters and --warmup
still override). --json writes {"device", "torch", "threads", "results": [...]} with one row per op
and shape, in the row schema of `xent bench --json` (impl, op, n, c, dtype, median_ms, min_ms,
max_ms, kernel_median_ms, gb_per_s), which scripts/rounds_summary.py reads as torch-R.json.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
DEFAULT_OPS = ["cross-entropy", "cross-entropy-grad", "log-softmax", "copy"]
DEFAULT_SHAPES = ["1024x32000", "8192x4096", "64x262144"]
SMALL_SHAPES = ["64x10", "1437x10", "4096x100"]


def make_ops(x, t):
    xg = x.clone().requires_grad_(True)

    def loss_and_grad():
        xg.grad = None
        F.cross_entropy(xg, t).backward()

    return {
        "cross-entropy": lambda: F.cross_entropy(x, t),
        "cross-entropy-grad": loss_and_grad,
        "nll-loss": lambda: F.nll_loss(x, t),
        "log-softmax": lambda: F.log_softmax(x, 1),
        "softmax": lambda: F.softmax(x, 1),
        "copy": lambda: x.clone(),
    }


def time_op(fn, cuda, iters, warmup):
    """Wall seconds of each of `iters` calls and, on cuda, CUDA-event seconds of each."""
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    wall, events = [], []
    for _ in range(iters):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        t0 = time.perf_counter()
        fn()
        if cuda:
            end.record()
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - t0)
        if cuda:
            events.append(start.elapsed_time(end) / 1e3)
    return wall, events


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"],
                   default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    p.add_argument("--shape", action="append", help="NxC, repeatable")
    p.add_argument("--op", action="append", choices=DEFAULT_OPS + ["nll-loss", "softmax"],
                   help="repeatable")
    p.add_argument("--dtype", choices=list(DTYPES), default="f32")
    p.add_argument("--iters", type=int, help="timed calls (default 10; 1000 with --small)")
    p.add_argument("--warmup", type=int, help="untimed calls first (default 3; 100 with --small)")
    p.add_argument("--small", action="store_true", help="small-batch loss + grad latency, in µs")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    shapes = a.shape or (SMALL_SHAPES if a.small else DEFAULT_SHAPES)
    ops = a.op or (["cross-entropy-grad"] if a.small else DEFAULT_OPS)
    iters = a.iters or (1000 if a.small else 10)
    warmup = a.warmup if a.warmup is not None else (100 if a.small else 3)
    if a.threads:
        torch.set_num_threads(a.threads)
    cuda = a.device == "cuda"
    impl = f"torch-{torch.__version__}-{a.device}"
    unit, scale = ("µs", 1e6) if a.small else ("ms", 1e3)
    torch.manual_seed(0)

    print(f"{impl}, {torch.get_num_threads()} threads, {iters} calls after {warmup} warm-up")
    print(f"{'op':20s} {'shape':>12s} {'median ' + unit:>11s} {'min ' + unit:>11s} "
          f"{'max ' + unit:>11s} {'GB/s':>8s}")
    rows = []
    for shape in shapes:
        n, c = (int(v) for v in shape.lower().split("x"))
        x = torch.randn(n, c, device=a.device).to(DTYPES[a.dtype])
        t = torch.randint(0, c, (n,), device=a.device)
        table = make_ops(x, t)
        for op in ops:
            wall, events = time_op(table[op], cuda, iters, warmup)
            med = statistics.median(wall)
            rows.append({
                "impl": impl, "op": op, "n": n, "c": c, "dtype": a.dtype,
                "median_ms": med * 1e3, "min_ms": min(wall) * 1e3, "max_ms": max(wall) * 1e3,
                "kernel_median_ms": statistics.median(events) * 1e3 if events else None,
                "gb_per_s": n * c * x.element_size() / med / 1e9,
                "iters": iters, "warmup": warmup,
            })
            print(f"{op:20s} {shape:>12s} {med * scale:11.3f} {min(wall) * scale:11.3f} "
                  f"{max(wall) * scale:11.3f} {rows[-1]['gb_per_s']:8.2f}", flush=True)
        del x, t, table
        if cuda:
            torch.cuda.empty_cache()
    if a.json:
        device = torch.cuda.get_device_name() if cuda else "cpu"
        with open(a.json, "w") as f:
            json.dump({"device": device, "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "results": rows}, f, indent=1)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
