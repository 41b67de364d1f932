#!/usr/bin/env bash
# Pretrain a base on a GPU machine (the `device` tool's H200) and measure it there:
#
#   bash scripts/device_pretrain.sh CONFIG.yaml [key=value ...]
#
# 1. without the project's packages there (the device's Python has torch and transformers,
#    not TRL or datasets), installs the wheels carried in .whl into /tmp/site;
# 2. runs `reasonrft pretrain --config CONFIG.yaml [key=value ...]` (stopped after $PRETRAIN_TIMEOUT s);
# 3. measures the result with benchmarks/bench_base.py (n = $BENCH_N, default 300);
# 4. packs the run folder (model files, config, logs; not the checkpoints, data or phase
#    scratch) into $OUT/run.tgz.part-*, parts of 15 MB: the device brings back files of 16 MiB
#    at most. Here: `cat run.tgz.part-* | tar -xz -C runs`.
set -uo pipefail
config=$1; shift
out=${OUT:-runs/device-out}
mkdir -p "$out"
if ! python3 -c "import trl, datasets, math_verify" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
run=$(python3 -c 'import sys, yaml; print(dict(yaml.safe_load(open(sys.argv[1])), **dict(a.split("=", 1) for a in sys.argv[2:]))["out"])' "$config" "$@")
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc; python3 -c 'import torch, transformers; print(torch.__version__, transformers.__version__)'; } > "$out/machine.txt" 2>&1
started=$(date +%s)
timeout "${PRETRAIN_TIMEOUT:-7200}" python3 -c 'import sys; from reasonrft.cli import main; sys.argv[0] = "reasonrft"; main()' pretrain --config "$config" "$@" > "$out/pretrain.log" 2>&1
status=$?
echo "pretrain: exit $status after $(( $(date +%s) - started )) s" | tee -a "$out/machine.txt"
if [ "$status" = 0 ]; then
    timeout "${BENCH_TIMEOUT:-200}" python3 benchmarks/bench_base.py --model "$run" --n "${BENCH_N:-300}" --batch-size "${BENCH_BATCH:-100}" > "$out/bench.jsonl" 2> "$out/bench.err"
    echo "bench: exit $? after $(( $(date +%s) - started )) s" | tee -a "$out/machine.txt"
fi
tar -cz -C "$(dirname "$run")" --exclude='checkpoint-*' --exclude='data' --exclude='init-*' --exclude='*.pt' --exclude='*/model' --exclude='runs' "$(basename "$run")" | split -b 15M - "$out/run.tgz.part-"
tail -n 3 "$out/pretrain.log"; cat "$out/machine.txt" "$out/bench.jsonl" 2>/dev/null
exit "$status"
