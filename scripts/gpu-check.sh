#!/usr/bin/env bash
# One-command GPU check (docs/BACKENDS.md). On a machine with a GPU:
#
#   scripts/gpu-check.sh cuda            # or: wgpu, flex, ndarray (the CPU path CI runs)
#   scripts/gpu-check.sh flex --model small --sample-batch 4 --train-batch 2 --train-steps 1
#
# 1. runs the parity set (model forward and training forward, KV-cached decoding, the
#    sampler's per-step logits, one training step, the tokenizer) on that device only
#    (RAR_TEST_DEVICES), against the fixtures in RAR_PARITY_DIR (default ../shared/parity);
# 2. runs examples/gpu_check on the device: bf16 step against fp32, two devices against one
#    with accumulation (when the machine has two), sampling throughput of RAR-B at batch 128
#    with CFG and training-step throughput of RAR-B;
# 3. prints one JSON report on stdout (the test log goes to stderr) and exits non-zero when a
#    check failed.
#
# One build serves both steps: the tests and the example share cargo's dev profile, which
# optimises every dependency (burn, cubecl) at opt-level 3 and this workspace at 1. Both are
# built with --workspace, so that cargo unifies dependency features exactly as for the
# README's test command (a narrower package set would rebuild burn).
# RAR_GPU_CHECK_FEATURES replaces the cargo features (default: the device's own), e.g. CI's
# "ndarray,wgpu" so that the script reuses the test build instead of making another.
# Extra arguments go to gpu_check (see `cargo run --example gpu_check -- --help`).
# Needs no network beyond what `cargo build` needs (see docs/BACKENDS.md for CUDA offline).
set -euo pipefail
cd "$(dirname "$0")/.."

device="${1:-cuda}"
shift || true
case "$device" in
  cuda | cuda:*) feature=cuda test_device=cuda ;;
  wgpu | wgpu:*) feature=wgpu test_device=wgpu ;;
  flex) feature=flex test_device=flex ;;
  ndarray) feature=ndarray test_device=ndarray ;;
  *) echo "gpu-check: unknown device '$device' (cuda[:N], wgpu[:N], flex, ndarray)" >&2; exit 2 ;;
esac
# The parity set runs on the first device of its kind; the example on the one named.
if [[ "$device" == *:* && "$device" != *:0 ]]; then
  echo "gpu-check: the parity tests run on ${test_device}:0, the example on $device" >&2
fi

export RAR_PARITY_DIR="${RAR_PARITY_DIR:-$(cd .. && pwd)/shared/parity}"
if [[ ! -d "$RAR_PARITY_DIR" ]]; then
  echo "gpu-check: no parity fixtures at $RAR_PARITY_DIR (set RAR_PARITY_DIR)" >&2
  exit 2
fi
export CARGO_TERM_COLOR=never
features="${RAR_GPU_CHECK_FEATURES:-$feature}"

tests=(--test parity_train_forward --test parity_sampling --test kv_cache --test training
       --test parity --test decode --test parity_sampler --test parity_train_step)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

start=$(date +%s)
echo "== parity set on $test_device" >&2
if RAR_TEST_DEVICES="$test_device" cargo test --workspace --features "$features" "${tests[@]}" \
    2>&1 | tee "$log" >&2; then
  status=passed
else
  status=failed
fi
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
parity="$status: $passed passed, $failed failed on $test_device in $(( $(date +%s) - start )) s"
echo "== $parity" >&2

echo "== gpu_check on $device" >&2
cargo build --workspace --features "$features" --example gpu_check
"${CARGO_TARGET_DIR:-target}/debug/examples/gpu_check" --device "$device" --parity "$parity" "$@"
