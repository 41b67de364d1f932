#!/usr/bin/env bash
# Redraws base-skills-curve.png (docs/results.md 4.1): every benchmarked base, skill against
# the examples its language model had seen. Run from the repository root.
cd docs/figures && exec ../../.venv/bin/python ../../benchmarks/plot_base_skills.py --out base-skills-curve.png \
  "first base@30000=base-skills-shipped.jsonl" \
  "A@3200=base-skills-dense-a.jsonl" "A@9600=base-skills-dense-a600.jsonl" \
  "C@16000=base-skills-dense-c.jsonl" \
  "D@24000=base-skills-dense-d500.jsonl" "D@32000=base-skills-dense-d1000.jsonl" \
  "E@24000=base-skills-e500.jsonl" "E@32000=base-skills-e1000.jsonl" "E@40000=base-skills-e1500.jsonl" \
  "F@144000=base-skills-f-text.jsonl" "F@156800=base-skills-f.jsonl" \
  "G@233600=base-skills-g-text.jsonl" "G@238400=base-skills-g.jsonl" \
  "J@257600=base-skills-j.jsonl" \
  "K (fresh LM)@236800=base-skills-k3.jsonl" "K (fresh LM)@313600=base-skills-k4.jsonl" \
  "M (fresh LM)@332800=base-skills-m3b.jsonl" \
  "N (K4's LM, 4 x 192 tower)@313600=base-skills-k4.jsonl" "N (K4's LM, 4 x 192 tower)@337600=base-skills-n2.jsonl" \
  "N (K4's LM, 4 x 192 tower)@401600=base-skills-n4g-h200.jsonl" "N (K4's LM, 4 x 192 tower)@433600=base-skills-n6.jsonl" \
  "N7 (N4g + dense diagrams)@401600=base-skills-n4g-h200.jsonl" "N7 (N4g + dense diagrams)@433600=base-skills-n7.jsonl" \
  "N8 (N2 + filtered counts)@337600=base-skills-n2.jsonl" "N8 (N2 + filtered counts)@369600=base-skills-n8.jsonl" \
  "N9 (N2 + filtered-count head)@337600=base-skills-n2.jsonl" "N9 (N2 + filtered-count head)@369600=base-skills-n9.jsonl" \
  "N10 (N8, question first)@337600=base-skills-n2.jsonl" "N10 (N8, question first)@369600=base-skills-n10.jsonl" \
  "N11 (N2 + size, material)@337600=base-skills-n2.jsonl" "N11 (N2 + size, material)@361600=base-skills-n11.jsonl" \
  "N11b (N11, seed 112)@337600=base-skills-n2.jsonl" "N11b (N11, seed 112)@361600=base-skills-n11b.jsonl" \
  "N12b (N2 + text top-up)@337600=base-skills-n2.jsonl" "N12b (N2 + text top-up)@376000=base-skills-n12b.jsonl" \
  "N13 (N12b, 40% format)@337600=base-skills-n2.jsonl" "N13 (N12b, 40% format)@376000=base-skills-n13.jsonl" \
  "N13b (N13, seed 132)@337600=base-skills-n2.jsonl" "N13b (N13, seed 132)@376000=base-skills-n13b.jsonl"
