#!/usr/bin/env bash
# counting from N2, seed 1: CoT-SFT, stage 1 and Reason-RFT sampled at the training temperature
# 0.9 (100 questions per split), against their evaluation at 0.1 on the same questions
cd "$(dirname "$0")/../../../../.."  # the repository root
for m in cot-sft stage1 reason-rft; do
  OMP_NUM_THREADS=1 .venv/bin/reasonrft eval model=runs/compare-counting-n2-seed1/$m task=counting data_root=runs/compare-counting-n2-seed1/data n=100 temperature=0.9 seed=1 output_dir=runs/eval-t09-counting/$m
done
