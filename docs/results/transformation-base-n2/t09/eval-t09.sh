#!/usr/bin/env bash
# transformation from N2: stage 1, Reason-RFT and the strict-format Reason-RFT sampled at the
# training temperature 0.9 (100 questions per split), to see the sampled policy GRPO optimised
cd "$(dirname "$0")/../../../.."  # the repository root (run from docs/results/transformation-base-n2/t09)
for m in stage1 reason-rft; do
  OMP_NUM_THREADS=1 .venv/bin/reasonrft eval model=runs/compare-transformation-n2/$m task=transformation data_root=runs/compare-transformation-n2/data n=100 temperature=0.9 output_dir=runs/eval-t09/$m
done
OMP_NUM_THREADS=1 .venv/bin/reasonrft eval model=runs/compare-transformation-n2-strict/reason-rft task=transformation data_root=runs/compare-transformation-n2/data n=100 temperature=0.9 output_dir=runs/eval-t09/reason-rft-strict
