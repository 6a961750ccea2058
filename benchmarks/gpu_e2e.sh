#!/usr/bin/env bash
# The GPU accuracy benchmark as ONE command (docs/gpu-benchmarks.md): device checks, training throughput of
# sslbench's loop against a peer-style loop, six regularizers pretrained on Fashion-MNIST for a time budget each,
# linear probe / kNN against the at-initialisation floor, records + Markdown tables under --results, all within
# --total-s (480 s by default). Offline; installs nothing.
#
#   bash benchmarks/gpu_e2e.sh --data DIR [--results DIR] [--smoke] [other options of benchmarks/gpu_e2e.py]
#
# DIR holds Fashion-MNIST's four idx .gz files. --smoke runs the whole pipeline on the CPU in about a minute.
# The full output is also written to <results>/gpu_e2e.log. PYTHON picks the interpreter (default python3).
set -o pipefail
cd "$(dirname "$0")/.." || exit 2
results=results/gpu
previous=""
for arg in "$@"; do
    [ "$previous" = "--results" ] && results="$arg"
    case "$arg" in --results=*) results="${arg#--results=}" ;; esac
    previous="$arg"
done
mkdir -p "$results" || exit 2
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"${PYTHON:-python3}" benchmarks/gpu_e2e.py "$@" 2>&1 | tee "$results/gpu_e2e.log"
