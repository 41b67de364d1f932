"""GRPO step time: vanilla TRL against ``reasonrft grpo``, alternating steps, in one run.

Run: ``.venv/bin/python benchmarks/bench_grpo.py [--steps 5] [--configs demo,2b-proportioned]
[--demo-model DIR] [--base-tree /tmp/base-6fcb999]``. Prints JSON lines: one per variant
(``s_per_step``: median of ``--steps`` steps after one warm-up step; its split into
``generation_s`` (rollouts), ``logprob_s`` (reference and policy log-prob passes, forward),
``backward_s`` and ``other_s`` (optimizer, processor, rewards); ``vision_images_per_step``
(images through the vision tower, counted by a hook on its patch embedding);
``peak_rss_mb`` / ``peak_cuda_mb``), then one per config with each variant's ``speedup``
(the first variant's s/step divided by its own), ``speedup_paired`` (the median ratio of the
same step of the two, which ran back to back), the same against ``base-6fcb999`` when it runs
but is not first, ``lora_over_full`` (``ours-lora`` / ``ours``, plain and paired) and the load
average before and after.

Each variant trains in its own process (its own RNG, its own peak memory) from the same
model, data and seed; the processes take turns, one optimizer step each, so that load from
other work on the machine hits all of them alike. Every variant is the stage's own trainer
construction (``reasonrft.stages.grpo``), TRL's ``GRPOTrainer``, with a timing subclass
patched in for ``trl.GRPOTrainer``:
- ``vanilla``: ``dedup_images=false share_prompt_prefix=false lora_merged_rollouts=false``:
  TRL as it is;
- ``ours``: the defaults (each distinct image encoded once per pass, each prompt run once in
  the log-prob passes and only completions scored, the rollout cache grown in place, LoRA
  rollouts from merged adapters);
- ``ours-lora`` / ``vanilla-lora``: the same with ``lora=true``;
- ``ours-lora-unmerged``: ``ours-lora`` with TRL's rollouts (``lora_merged_rollouts=false``);
- ``ours-lora-gc``: LoRA with ``gradient_checkpointing=true`` (the old slow LoRA case);
- ``base-6fcb999``: the stage as of commit 6fcb999, from a worktree (``--base-tree``).

Configs (G = 8 completions per prompt, 2 prompts per step, as in the demo):
- ``demo``: the demo's GRPO: the nano model (``--demo-model``, e.g. a CoT-SFT output; default
  the shipped base), counting, up to 200 new tokens;
- ``2b-proportioned``: ``modeling.SIZES["2b-proportioned"]``, random weights (completions run
  to their 128-token limit), counting images upscaled to 448 px (``min_pixels``).

The FLOP arithmetic of ``2b-proportioned`` (forward FLOPs, 2 per multiply-add; ``flops`` below):
- Qwen2-VL-2B at the recipe's max_pixels 480,000: vision tower depth 32, width 1,280, MLP
  5,120, 2,450 patches: 2,450 x (32 x (2*(4*1280^2 + 2*1280*5120) + 4*2450*1280) + patch
  embedding + merger) = 4.1 TFLOPs per image. Language model (hidden 1,536, 28 layers, MLP
  8,960, 2 KV heads of 128) over 1,100 tokens (612 visual), 400 scored: 3.2 TFLOPs per
  sequence. Vision / LM = 1.30; at G = 8 the tower is 56% of a forward, 7/8 of it repeated.
- 2b-proportioned: tower depth 4, width 128, 448 px images = 1,024 patches (256 visual
  tokens): 4.3 GFLOPs per image; LM = nano's (hidden 256, 4 layers, MLP 768) over ~444
  tokens (256 visual, ~60 text, 128 completion): 3.3 GFLOPs. Vision / LM = 1.28; visual
  tokens are 58% of a sequence (2B: 56%).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- FLOP arithmetic


def vision_flops(depth: int, width: int, patches: int, out_hidden: int, mlp_ratio: int = 4, merge: int = 4, patch_in: int = 1176) -> float:
    """Forward FLOPs of a Qwen2-VL vision tower on one image of ``patches`` patches."""
    layer = 2 * (4 * width**2 + 2 * width * mlp_ratio * width) + 4 * patches * width  # linears + attention
    merger = 2 * ((merge * width) ** 2 + merge * width * out_hidden) / merge
    return patches * (2 * patch_in * width + depth * layer + merger)


def lm_flops(hidden: int, layers: int, intermediate: int, heads: int, kv_heads: int, tokens: int, vocab: int, scored: int) -> float:
    """Forward FLOPs of a Qwen2 language model over one sequence (causal attention: half the
    pairs), with the output head on the ``scored`` completion tokens only (TRL keeps those)."""
    kv = kv_heads * hidden // heads
    layer = 2 * (2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * intermediate) + 4 * (tokens / 2) * hidden
    return tokens * layers * layer + 2 * hidden * vocab * scored


def flops() -> dict:
    qwen_v, qwen_l = vision_flops(32, 1280, 2450, 1536), lm_flops(1536, 28, 8960, 12, 2, 1100, 151936, 400)
    ours_v, ours_l = vision_flops(4, 128, 1024, 256), lm_flops(256, 4, 768, 4, 2, 444, 2048, 128)
    return {
        "qwen2_vl_2b": {"vision_tflops_per_image": round(qwen_v / 1e12, 2), "lm_tflops_per_sequence": round(qwen_l / 1e12, 2), "ratio": round(qwen_v / qwen_l, 2)},
        "2b_proportioned": {"vision_gflops_per_image": round(ours_v / 1e9, 2), "lm_gflops_per_sequence": round(ours_l / 1e9, 2), "ratio": round(ours_v / ours_l, 2)},
    }


# --------------------------------------------------------------------------- configs


def configs(args, scratch: Path) -> dict[str, dict]:
    demo_model = args.demo_model or str(ROOT / "src" / "reasonrft" / "base")
    common = dict(task="counting", n_train=64, prompts_per_device=2, num_generations=8, seed=0, save_steps=10_000, logging_steps=1000)
    return {
        "demo": dict(model=demo_model, max_completion_length=200, **common, variants=["vanilla", "base-6fcb999", "ours", "ours-lora", "ours-lora-unmerged", "ours-lora-gc"]),
        "2b-proportioned": dict(model=str(scratch / "2b-proportioned"), size="2b-proportioned", max_completion_length=128, min_pixels=448 * 448, **common, variants=["vanilla", "ours", "ours-lora"]),
    }


TRL_AS_IT_IS = dict(dedup_images=False, share_prompt_prefix=False, lora_merged_rollouts=False)
VARIANTS = {
    "vanilla": TRL_AS_IT_IS,
    "ours": {},
    "vanilla-lora": dict(TRL_AS_IT_IS, lora=True),
    "ours-lora": dict(lora=True),
    "ours-lora-unmerged": dict(lora=True, lora_merged_rollouts=False),
    "ours-lora-gc": dict(lora=True, gradient_checkpointing=True),
    "base-6fcb999": {},
}


# --------------------------------------------------------------------------- one variant (child process)


def child(spec: dict, turn, cond, index: int, order: list[int], queue) -> None:
    """Train one variant for ``steps + 1`` steps, taking turns with the other processes."""
    if spec["tree"]:
        sys.path.insert(0, str(Path(spec["tree"]) / "src"))
    import resource

    import torch
    import trl
    from transformers import TrainerCallback

    from reasonrft.stages import grpo

    assert Path(grpo.__file__).is_relative_to(Path(spec["tree"] or ROOT)), grpo.__file__
    record: dict = {"steps": []}
    step: dict = {}

    def wait_turn():
        with cond:
            cond.wait_for(lambda: order[turn.value % len(order)] == index)

    def pass_turn(done: bool = False):
        with cond:
            if done:
                order.remove(index)
            else:
                turn.value += 1
            cond.notify_all()

    class Turns(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            wait_turn()
            step.clear()
            step["start"] = time.perf_counter()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, args, state, control, **kwargs):
            step["s"] = time.perf_counter() - step.pop("start")
            record["steps"].append(dict(step))
            pass_turn()

    def timed(name, fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                step[name] = step.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    class Timed(trl.GRPOTrainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self._generate_single_turn = timed("generation_s", self._generate_single_turn)
            self._get_per_token_logps_and_entropies = timed("logprob_s", self._get_per_token_logps_and_entropies)
            self.accelerator.backward = timed("backward_s", self.accelerator.backward)
            for model in (self.model, self.ref_model):
                for module in model.modules() if model is not None else ():
                    if hasattr(module, "patch_embed") and hasattr(module, "merger"):
                        module.register_forward_pre_hook(count_requested, with_kwargs=True)
                        module.patch_embed.register_forward_pre_hook(count_encoded)
            self.add_callback(Turns())

    def count_requested(module, args, kwargs):
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        step["images_requested"] = step.get("images_requested", 0) + grid.shape[0]
        step["rows_requested"] = step.get("rows_requested", 0) + int(grid.prod(-1).sum())

    def count_encoded(module, args):
        step["rows_encoded"] = step.get("rows_encoded", 0) + args[0].shape[0]

    trl.GRPOTrainer = Timed
    fields = {k: v for k, v in spec["config"].items() if k in {f for f in grpo.GRPOStageConfig.__dataclass_fields__}}
    try:
        grpo.run(grpo.GRPOStageConfig(**fields))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        record.update(peak_rss_mb=round(rss), peak_cuda_mb=round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None)
    except BaseException as exc:  # report, and never leave the others waiting
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        pass_turn(done=True)
        queue.put((index, record))


def summarize(name: str, record: dict, warmup: int) -> dict:
    steps = record["steps"][warmup:]
    out = {"variant": name, "steps": len(steps)}
    if "error" in record:
        out["error"] = record["error"]
    if not steps:
        return out
    med = lambda key: round(statistics.median(s.get(key, 0.0) for s in steps), 3)  # noqa: E731
    out["s_per_step"] = med("s")
    for key in ("generation_s", "logprob_s", "backward_s"):
        out[key] = med(key)
    out["other_s"] = round(statistics.median(s["s"] - s.get("generation_s", 0) - s.get("logprob_s", 0) - s.get("backward_s", 0) for s in steps), 3)
    images = [s["rows_encoded"] * s["images_requested"] / s["rows_requested"] for s in steps if s.get("rows_requested")]
    out["vision_images_per_step"] = round(statistics.median(images), 1) if images else 0
    out["vision_images_requested_per_step"] = round(statistics.median(s.get("images_requested", 0) for s in steps), 1)
    out["peak_rss_mb"], out["peak_cuda_mb"] = record.get("peak_rss_mb"), record.get("peak_cuda_mb")
    return out


def paired(base: dict, other: dict, warmup: int) -> float | None:
    """Median over steps of (baseline step time / this variant's time of the same step)."""
    ratios = [b["s"] / o["s"] for b, o in zip(base["steps"][warmup:], other["steps"][warmup:])]
    return round(statistics.median(ratios), 2) if ratios else None


def run_config(name: str, config: dict, args, scratch: Path) -> None:
    import multiprocessing as mp

    wanted = set(args.variants.split(",")) if args.variants else None
    variants = [v for v in config.pop("variants") if (v != "base-6fcb999" or Path(args.base_tree).is_dir()) and (wanted is None or v in wanted)]
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    turn, cond, order, queue = manager.Value("i", 0), manager.Condition(), manager.list(range(len(variants))), manager.Queue()
    load_before = os.getloadavg()
    procs = []
    for i, variant in enumerate(variants):
        spec = {"config": {**config, **VARIANTS[variant], "output_dir": str(scratch / name / variant), "max_steps": args.steps + 1}, "tree": args.base_tree if variant == "base-6fcb999" else ""}
        procs.append(ctx.Process(target=child, args=(spec, turn, cond, i, order, queue)))
        procs[-1].start()
    records = dict(queue.get() for _ in procs)
    for p in procs:
        p.join()
    (scratch / name).mkdir(parents=True, exist_ok=True)
    (scratch / name / "steps.json").write_text(json.dumps({v: records[i] for i, v in enumerate(variants)}, indent=1))
    rows = [summarize(v, records[i], warmup=1) for i, v in enumerate(variants)]
    for row in rows:
        print(json.dumps({"config": name, **row}), flush=True)
    base = rows[0].get("s_per_step")
    summary = {"config": name, "baseline": variants[0], "speedup": {r["variant"]: round(base / r["s_per_step"], 2) for r in rows if base and r.get("s_per_step")}}
    # the same step of two variants ran back to back, under nearly the same load: their ratio is steadier
    summary["speedup_paired"] = {v: paired(records[0], records[i], warmup=1) for i, v in enumerate(variants) if i}
    index = {v: i for i, v in enumerate(variants)}
    if index.get("base-6fcb999", 0):  # the second baseline, when it is not the first
        base_i = index["base-6fcb999"]
        summary["speedup_over_base-6fcb999"] = {r["variant"]: round(rows[base_i]["s_per_step"] / r["s_per_step"], 2) for r in rows if rows[base_i].get("s_per_step") and r.get("s_per_step") and r["variant"] != "base-6fcb999"}
        summary["speedup_paired_over_base-6fcb999"] = {v: paired(records[base_i], records[i], warmup=1) for v, i in index.items() if v != "base-6fcb999"}
    by = {r["variant"]: r.get("s_per_step") for r in rows}
    if by.get("ours-lora") and by.get("ours"):
        summary["lora_over_full"] = round(by["ours-lora"] / by["ours"], 2)
        summary["lora_over_full_paired"] = round(1 / paired(records[index["ours"]], records[index["ours-lora"]], warmup=1), 2)
    summary["load_avg_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(summary), flush=True)


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5, help="measured steps per variant, after one warm-up step")
    parser.add_argument("--configs", default="demo,2b-proportioned")
    parser.add_argument("--demo-model", default="", help="the demo's GRPO starting model (a CoT-SFT output); default: the shipped base")
    parser.add_argument("--base-tree", default="/tmp/base-6fcb999", help="a worktree of commit 6fcb999 (`git worktree add /tmp/base-6fcb999 6fcb999`); skipped if absent")
    parser.add_argument("--variants", default="", help="comma-separated subset of each config's variants (default: all)")
    parser.add_argument("--out", default="", help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    scratch = Path(args.out or tempfile.mkdtemp(prefix="bench-grpo-"))
    print(json.dumps({"machine": machine(), "omp_num_threads": os.environ["OMP_NUM_THREADS"], "flops": flops()}), flush=True)
    chosen = configs(args, scratch)
    for name in args.configs.split(","):
        config = chosen[name]
        size = config.pop("size", None)
        if size and not (Path(config["model"]) / "config.json").is_file():
            from reasonrft import modeling

            modeling.init_model(size, config["model"], seed=0, corpus=modeling.training_corpus(samples_per_split=12))
        run_config(name, config, args, scratch)


def machine() -> str:
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return f"{cpu}, {os.cpu_count()} cores" + (f", {gpu}" if gpu else "")


if __name__ == "__main__":
    main()
