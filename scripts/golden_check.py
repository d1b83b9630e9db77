#!/usr/bin/env python3
"""Run the golden cases through `xent eval` and compare with PyTorch's float64 truth.

Usage:
    python3 scripts/golden_check.py XENT CASES_DIR [--grad] [--only a,b] [--skip a,b]
                                    [--device gpu|cpu] [--args "MORE FLAGS"]

    e.g. WGPU_BACKEND=vulkan python3 scripts/golden_check.py target/release/xent tests/golden --grad

CASES_DIR holds one folder per case and a `manifest.json` listing them (format: the README in
tests/golden/). For each case this runs

    XENT eval OP --input F [--target F] [--weight F] [--ignore-index I] [--reduction R]
                 [--label-smoothing E] [--dim D] [--input-dtype bf16] [--device D]
                 --out OUT.npy [--grad-out GRAD.npy]

and, for OP linear-cross-entropy (tests/golden_linear), also --linear-weight F [--linear-bias F]
and, with --grad, [--grad-linear-weight-out F] [--grad-linear-bias-out F],
passing only the arguments the case sets. A result passes where it has the truth's shape, NaN
exactly where the truth is NaN, the same infinities, and |ours - truth| <= tol_abs + tol_rel*|truth|
elsewhere. `--grad` also checks d(loss)/d(input) against `grad.npy` with `grad_tol_abs`, and
each other gradient the case holds (`grad_linear_weight`, `grad_linear_bias`) with its own
`<name>_tol_abs`. A case
whose `expected` is null (PyTorch refuses it) passes when xent exits non-zero with a message on
stderr. `--only` / `--skip` keep / drop cases whose name contains any of the given substrings.

Prints one line per failure, then `N passed, M failed`; exits 1 if anything failed. Needs numpy.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def first(mask):
    """The index of the first True in `mask`, as a tuple of ints."""
    return tuple(int(v) for v in np.argwhere(mask)[0])


def mismatch(ours, truth, tol_abs, tol_rel):
    """None when `ours` matches `truth` within tolerance, else why not."""
    if ours.shape != truth.shape:
        return f"shape {list(ours.shape)}, expected {list(truth.shape)}"
    ours = ours.astype(np.float64)
    nan = np.isnan(truth)
    if (np.isnan(ours) != nan).any():
        i = first(np.isnan(ours) != nan)
        return f"NaN mismatch at {i}: {float(ours[i])} vs {float(truth[i])}"
    inf = np.isinf(truth)
    bad_inf = (np.isinf(ours) != inf) | (inf & (ours != truth))
    if bad_inf.any():
        i = first(bad_inf)
        return f"infinity mismatch at {i}: {float(ours[i])} vs {float(truth[i])}"
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        err = np.abs(ours - truth)
        excess = np.where(np.isfinite(truth), err - (tol_abs + tol_rel * np.abs(truth)), -np.inf)
    if (excess > 0).any():
        i = tuple(int(v) for v in np.unravel_index(np.argmax(excess), excess.shape))
        return f"{float(ours[i])!r} vs {float(truth[i])!r}: error {err[i]:.3g} over tolerance by {excess[i]:.3g}"
    return None


# Gradient key in case.json -> the flag that writes it.
GRAD_FLAGS = {
    "grad": "--grad-out",
    "grad_linear_weight": "--grad-linear-weight-out",
    "grad_linear_bias": "--grad-linear-bias-out",
}


def command(xent, d, case, device, out, grad_outs, extra):
    """The xent command line of `case`; `grad_outs` maps each gradient key to its file."""
    files, args = case["files"], case["args"]
    cmd = [xent, "eval", case["op"], "--input", os.path.join(d, files["input"])]
    for key in ("target", "weight", "linear_weight", "linear_bias"):
        if key in files:
            cmd += ["--" + key.replace("_", "-"), os.path.join(d, files[key])]
    for key in ("ignore_index", "reduction", "label_smoothing", "dim"):
        if key in args:
            cmd += ["--" + key.replace("_", "-"), str(args[key])]
    if case.get("dtype") == "bf16":
        cmd += ["--input-dtype", "bf16"]
    if device:
        cmd += ["--device", device]
    cmd += extra + ["--out", out]
    for key, path in grad_outs.items():
        cmd += [GRAD_FLAGS[key], path]
    return cmd


def check(xent, d, case, grad, device, tmp, extra):
    """None when the case passes, else why it failed."""
    out = os.path.join(tmp, "out.npy")
    grad_outs = {key: os.path.join(tmp, key + ".npy")
                 for key in GRAD_FLAGS if grad and case.get(key)}
    for p in [out] + list(grad_outs.values()):
        if os.path.exists(p):
            os.remove(p)
    cmd = command(xent, d, case, device, out, grad_outs, extra)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "timed out after 300 s"
    if case["expected"] is None:
        if r.returncode == 0:
            return f"accepted an input PyTorch refuses ({case.get('error')})"
        return None if r.stderr.strip() else "refused the input without a message on stderr"
    if r.returncode != 0:
        return f"exit {r.returncode}: {r.stderr.strip()[-300:]}"
    why = mismatch(np.load(out), np.load(os.path.join(d, case["expected"])),
                   case["tol_abs"], case["tol_rel"])
    if why:
        return "output: " + why
    for key, path in grad_outs.items():
        if not os.path.exists(path):
            return f"no {key} written"
        why = mismatch(np.load(path), np.load(os.path.join(d, case[key])),
                       case[key + "_tol_abs"], case["tol_rel"])
        if why:
            return f"{key}: " + why
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("xent", help="the xent binary")
    p.add_argument("cases", help="the folder holding manifest.json and the case folders")
    p.add_argument("--grad", action="store_true", help="also check the gradients")
    p.add_argument("--only", help="comma-separated substrings: run only the cases matching one")
    p.add_argument("--skip", help="comma-separated substrings: skip the cases matching one")
    p.add_argument("--device", choices=["gpu", "cpu"], help="passed to xent eval")
    p.add_argument("--args", default="", help='more flags for every command, e.g. "--shards 2"')
    a = p.parse_args()
    only = a.only.split(",") if a.only else None
    skip = a.skip.split(",") if a.skip else []
    with open(os.path.join(a.cases, "manifest.json")) as f:
        names = json.load(f)["cases"]
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            if (only and not any(s in name for s in only)) or any(s in name for s in skip):
                continue
            d = os.path.join(a.cases, name)
            with open(os.path.join(d, "case.json")) as f:
                case = json.load(f)
            why = check(a.xent, d, case, a.grad, a.device, tmp, a.args.split())
            if why:
                failed += 1
                print(f"FAIL {name}: {why}", flush=True)
            else:
                passed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
