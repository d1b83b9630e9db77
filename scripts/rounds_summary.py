#!/usr/bin/env python3
"""Summarises scripts/lavapipe_rounds.sh: per shape and op, the median over rounds of xent's
end-to-end and kernel medians, of PyTorch's, their ratio, each round's ratio, and xent's share
of lavapipe's read kernel and buffer copy measured in the same round."""
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/xent-rounds")
rounds = sorted(int(p.stem.split("-")[1]) for p in out.glob("xent-*.json"))
rows = {}
for r in rounds:
    xent = json.loads((out / f"xent-{r}.json").read_text())["results"]
    torch = json.loads((out / f"torch-{r}.json").read_text())["results"]
    by = {(x["op"], x["n"], x["c"]): x for x in xent}
    tby = {(t["op"], t["n"], t["c"]): t for t in torch}
    for (op, n, c), x in by.items():
        if op in ("copy", "read", "write"):
            continue
        read, copy = by[("read", n, c)], by[("copy", n, c)]
        t = tby[(op, n, c)]
        e = rows.setdefault((n, c, op), {"x": [], "k": [], "t": [], "ratio": [], "read": [], "copy": []})
        e["x"].append(x["median_ms"])
        e["k"].append(x["kernel_median_ms"] or float("nan"))
        e["t"].append(t["median_ms"])
        e["ratio"].append(t["median_ms"] / x["median_ms"])
        # Logits bytes per second against the roofline's, as `xent bench` reports.
        e["read"].append(100 * read["median_ms"] / x["median_ms"])
        e["copy"].append(100 * copy["median_ms"] / x["median_ms"])
bw = {}
for r in rounds:
    for x in json.loads((out / f"xent-{r}.json").read_text())["results"]:
        if x["op"] in ("copy", "read", "write"):
            bw.setdefault((x["n"], x["c"], x["op"]), []).append(x["gb_per_s"])
med = statistics.median
print(f"{len(rounds)} rounds from {out}\n")
print("| shape | op | xent ms (kernel) | %read | %copy | PyTorch ms | speed-up (per round) |")
print("|---|---|---|---|---|---|---|")
for (n, c, op), e in rows.items():
    per = "/".join(f"{v:.2f}" for v in e["ratio"])
    print(
        f"| {n}×{c} | {op} | {med(e['x']):.1f} ({med(e['k']):.1f}) | {med(e['read']):.0f}% "
        f"| {med(e['copy']):.0f}% | {med(e['t']):.1f} | **{med(e['t']) / med(e['x']):.2f}×** ({per}) |"
    )
print()
for (n, c, op), v in sorted(bw.items()):
    print(f"{op} {n}x{c}: median {med(v):.2f} GB/s (min {min(v):.2f}, max {max(v):.2f})")
