"""Ours against the official PyTorch code, interleaved on this machine, at 1 and 2 threads:
the training step (dropout 0 and 0.1) and KV-cached guided sampling (small config, and RAR-B
width with --rar-b), printed as a table of times and ratios (issue #12).

    cargo build --release --examples
    pip install torch timm numpy
    python benches/compare.py --reference /path/to/1d-tokenizer            # ~10 min
    python benches/compare.py --reference DIR --rar-b --rounds 1             # + RAR-B rows
    python benches/compare.py --reference DIR --rar-b --only RAR-B           # RAR-B rows only

    # Both sides held to AVX2 + FMA on an AVX-512 CPU (how an AVX2-only machine runs them):
    export CARGO_TARGET_DIR=target/avx2   # keeps the default build's binaries
    cargo build --release --examples --no-default-features --features flex
    python benches/compare.py --reference DIR --isa avx2

--isa avx2 caps our fused kernels (RAR_KERNELS_ISA=avx2) and needs a build without gemm's
AVX-512 kernels (checked in every run's "cpu kernels:" line); it caps PyTorch through
ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2 and ONEDNN_MAX_CPU_ISA=AVX2 (checked
through torch.backends.cpu.get_cpu_capability()). It is an emulation: the caches, clocks and
cores stay this CPU's, and glibc's and burn-flex's few element-wise AVX-512 paths are not capped.

Each measurement runs ours, then the official code, in separate processes one after the
other; with --rounds 2 the whole sequence is repeated and the best time per row is kept.
Ratios are PyTorch time / our time (> 1: ours is faster). The CPU model and SIMD flags are
printed first, since figures do not carry over between machines.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--hidden", "256", "--depth", "4", "--heads", "8", "--mlp", "1024"]
RAR_B = ["--hidden", "768", "--depth", "24", "--heads", "16", "--mlp", "3072"]


def cpu_description():
    """`Model name` and the SIMD flags of `lscpu`."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    model = re.search(r"Model name:\s*(.+)", out)
    flags = re.search(r"Flags:\s*(.+)", out)
    simd = sorted({f for f in (flags.group(1).split() if flags else [])
                   if f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")})
    return f"{model.group(1).strip() if model else 'unknown CPU'} ({', '.join(simd)}), " \
           f"{os.cpu_count()} logical CPUs"


# Environment that holds each side to AVX2 + FMA (`--isa avx2`).
AVX2_ENV = {"RAR_KERNELS_ISA": "avx2", "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def run(cmd, env, pattern, forbid=()):
    """Runs `cmd` and returns the float captured by `pattern` in its output; exits when the
    output contains one of `forbid` (kernel levels the run must not use)."""
    print("  $", " ".join(str(c) for c in cmd), flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    kernels = re.search(r"cpu kernels: .*", done.stdout)
    if kernels:
        print("   ", kernels.group(0), flush=True)
    for level in forbid:
        if level in done.stdout:
            sys.exit(f"{cmd[0]} used '{level}' under --isa avx2: build it without AVX-512 "
                     "(`cargo build --release --examples --no-default-features --features "
                     "flex`)")
    match = re.search(pattern, done.stdout)
    if not match:
        sys.exit(f"no '{pattern}' in the output of {cmd[0]}:\n{done.stdout}")
    return float(match.group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", default=os.environ.get("RAR_REFERENCE"),
                   help="checkout of bytedance/1d-tokenizer (or set RAR_REFERENCE)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--rar-b", action="store_true", help="also sample at RAR-B width (slow)")
    p.add_argument("--decoder", default="auto", help="our sample_bench --decoder")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--isa", choices=["native", "avx2"], default="native",
                   help="avx2: hold both sides to AVX2 + FMA (see the module text)")
    p.add_argument("--only", default="",
                   help="run only the rows whose name contains this text (e.g. 'RAR-B')")
    args = p.parse_args()
    if not args.reference:
        p.error("name the official checkout with --reference DIR or RAR_REFERENCE")
    examples = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "examples"
    for name in ("train_bench", "sample_bench"):
        if not (examples / name).is_file():
            sys.exit(f"{examples / name} missing: run `cargo build --release --examples` first")
    py = [args.python]
    torch_dir = ROOT / "benches" / "pytorch"
    train_best = r"train step: best ([0-9.]+) s"
    sample_median = r"kv cache:\s+([0-9.]+) s/batch"
    rows = []
    for dropout in ("0", "0.1"):
        rows.append((f"training step, dropout {dropout} (best of 3)",
                     lambda t, d=dropout: [examples / "train_bench", "--threads", t, "--dropout", d,
                                           "--steps", "3"],
                     lambda t, d=dropout: py + [torch_dir / "train_step.py", "--reference",
                                                args.reference, "--threads", t, "--dropout", d,
                                                "--steps", "3"],
                     train_best))
    rows.append(("sampling C 256 D 4, batch 8, CFG 4 (median of 3)",
                 lambda t: [examples / "sample_bench", *SMALL, "--recompute", "false",
                            "--repeats", "3", "--decoder", args.decoder],
                 lambda t: py + [torch_dir / "sample.py", "--reference", args.reference,
                                 *SMALL, "--threads", t, "--repeats", "3"],
                 sample_median))
    if args.rar_b:
        rows.append(("sampling RAR-B width (C 768 D 24), batch 8, CFG 4 (one batch)",
                     lambda t: [examples / "sample_bench", *RAR_B, "--recompute", "false",
                                "--repeats", "1", "--decoder", args.decoder],
                     lambda t: py + [torch_dir / "sample.py", "--reference", args.reference,
                                     *RAR_B, "--threads", t, "--repeats", "1"],
                     sample_median))

    rows = [row for row in rows if args.only in row[0]]
    if not rows:
        p.error(f"no row's name contains {args.only!r}")
    base_env = dict(os.environ, **(AVX2_ENV if args.isa == "avx2" else {}))
    forbid = ("products gemm AVX-512", "fused kernels avx512f") if args.isa == "avx2" else ()
    torch_isa = subprocess.run(
        py + ["-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        env=base_env, capture_output=True, text=True).stdout.strip()
    if args.isa == "avx2" and torch_isa != "AVX2":
        sys.exit(f"PyTorch reports CPU capability {torch_isa!r} under --isa avx2, not AVX2")
    print(f"machine: {cpu_description()}; --isa {args.isa}; PyTorch CPU capability {torch_isa}",
          flush=True)
    best = {}
    threads = args.threads.split(",")
    for r in range(args.rounds):
        for name, ours, theirs, pattern in rows:
            for t in threads:
                env = dict(base_env, RAYON_NUM_THREADS=t, OMP_NUM_THREADS=t)
                print(f"round {r + 1}: {name}, {t} thread(s)", flush=True)
                a = run(ours(t), env, pattern, forbid)
                b = run(theirs(t), env, pattern)
                print(f"  ours {a:.3f} s, official {b:.3f} s, ratio {b / a:.2f}x", flush=True)
                key = (name, t)
                prev = best.get(key, (float("inf"), float("inf")))
                best[key] = (min(prev[0], a), min(prev[1], b))

    print(f"\nmachine: {cpu_description()}; --isa {args.isa} (PyTorch {torch_isa}); "
          f"best of {args.rounds} round(s)\n")
    print("| what | threads | ours | official PyTorch | ratio (PyTorch / ours) |")
    print("|---|---|---|---|---|")
    for name, *_ in rows:
        for t in threads:
            a, b = best[(name, t)]
            print(f"| {name} | {t} | {a:.3f} s | {b:.3f} s | {b / a:.2f}× |")
    for name, *_ in rows:
        if len(threads) >= 2:
            (a1, b1), (a2, b2) = best[(name, threads[0])], best[(name, threads[-1])]
            print(f"second core ({threads[0]} → {threads[-1]} threads), {name}: ours "
                  f"{a1 / a2:.2f}×, PyTorch {b1 / b2:.2f}×")


if __name__ == "__main__":
    main()
