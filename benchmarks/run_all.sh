#!/usr/bin/env bash
# Regenerate every table and plot of the README's "Benchmarks" section (about 20 min on 2 cores).
# Needs the bench and nest extras: pip install -e ".[bench,nest]". Run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
python benchmarks/training_step.py --epoch --repeats 5 --json "$out/training_step.json" --png "$out/training_step.png" \
    | tee "$out/training_step.txt"
python benchmarks/backward.py --variants recurrent,feedforward --repeats 5 --json "$out/throughput.json" \
    --png "$out/throughput.png" | tee "$out/throughput.txt"
python benchmarks/forward.py --json "$out/forward.json" | tee "$out/forward.txt"
python benchmarks/scaling.py --json "$out/scaling.json" --png-dir "$out" | tee "$out/scaling.txt"
python benchmarks/nest_forward.py --json "$out/nest_forward.json" --png "$out/nest_forward.png" | tee "$out/nest_forward.txt"
python benchmarks/engine_table.py --json "$out/engine_table.json" | tee "$out/engine_table.txt"
python benchmarks/compile_time.py --json "$out/compile_time.json" --out "$out/compile_time.txt"
