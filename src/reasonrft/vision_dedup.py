"""Encode each distinct image once per pass in GRPO, exactly (issue 15).

TRL's ``GRPOTrainer`` repeats every prompt G times, images included, so the image processor
builds ``pixel_values`` G times and the vision tower encodes G identical copies of each image:
in the rollout prefill and again in every log-probability pass. This module removes that
repeated work without forking the trainer:

- **Vision tower** (``DedupTower``): the instance's ``forward`` is wrapped (no module is
  replaced, so ``state_dict`` keys, saving, LoRA and DDP/DeepSpeed wrapping are untouched).
  Within one call it finds identical images (same grid, same pixel rows: a cheap fingerprint
  proposes, ``torch.equal`` decides), runs the tower on the distinct ones and gathers the
  features back into the caller's order. Autograd's backward of that gather sums the G
  feature gradients of a shared image before one backward through the tower: the same
  gradient as G separate encodings, up to float rounding.
- **Frozen tower** (no parameter requires grad, as with ``freeze_vision`` or LoRA): features
  are also cached across calls, keyed by the image's content and the autocast state, so the
  generation prefill, the reference pass and the policy pass of a step share one encoding.
  The cache is cleared at the end of every optimizer step (``install``'s callback). It is off
  under ZeRO-3 and FSDP, where skipping a forward on one rank would stall the others'
  parameter gathers.
- **Image processor** (``DedupPreprocess``): the processor's ``_preprocess`` resizes and
  normalises each distinct image once per call and repeats its patch rows.
- **Rollout prefill** (``SharedPrefill``): the G copies of a prompt are prefilled once; the
  KV cache and the first logits are repeated G times (not while dropout is active, as with
  LoRA's ``lora_dropout``, where each copy's prefill differs); then the cache grows in place
  (``rollout_cache``) instead of being concatenated at every generated token.

Nothing here changes which numbers are computed, only how often: the rollouts, per-token
log-probs, the loss and every gradient match vanilla TRL within 1e-5 in fp32
(``tests/test_vision_dedup.py``); the module path and forward signatures are those of
transformers 5's Qwen2-VL and Qwen2.5-VL (``model.model.visual``, ``grid_thw``).
``install(trainer)`` turns it all on; ``dedup_images=false`` in the GRPO stage leaves it off.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass
from typing import Any

import torch

MAX_CACHED_IMAGES = 4096  # a frozen tower's cache is cleared each step; this bounds it anyway


@dataclass
class TowerStats:
    """Counters of one wrapped tower: images asked for, encoded, and served from the cache."""

    calls: int = 0
    images_in: int = 0
    images_encoded: int = 0
    cache_hits: int = 0


def _unwrap(model: Any) -> Any:
    """The transformers model inside DDP/DeepSpeed (``.module``) and PEFT (``.base_model.model``)."""
    for _ in range(4):
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        else:
            break
    return model


def wrap_method(owner: Any, name: str, wrapper_cls: type, *args: Any) -> Any:
    """Set ``owner.name`` (an instance attribute: no module replaced, state_dict keys unchanged)
    to ``wrapper_cls(*args)``, unless it already is such a wrapper (idempotent); returns the
    wrapper in place. The wrapper is built before it is set, so it can take the current
    ``owner.name`` as the call it wraps."""
    current = owner.__dict__.get(name)
    if isinstance(current, wrapper_cls):
        return current
    wrapper = wrapper_cls(*args)
    setattr(owner, name, wrapper)
    return wrapper


def find_vision_tower(model: Any) -> torch.nn.Module | None:
    """The vision tower of a Qwen2-VL-family model (``model.model.visual`` in transformers 5,
    ``model.visual`` in older layouts), through PEFT and DDP/DeepSpeed wrappers; None if absent."""
    model = _unwrap(model)
    for owner in (getattr(model, "model", None), model):
        tower = getattr(owner, "visual", None)
        if isinstance(tower, torch.nn.Module):
            return tower
    return None


class DedupTower:
    """The ``forward`` of one vision tower instance, encoding each distinct image once.

    Installed as ``tower.forward`` (an instance attribute; ``tower.__call__`` and its hooks run
    as before). It calls the forward it replaced (the class's own, decorators included) on the
    distinct images, so hooks of its submodules and gradient checkpointing still apply."""

    def __init__(self, tower: torch.nn.Module, cache_features: bool) -> None:
        self.tower = tower
        self.inner = tower.__dict__.get("forward")  # an instance-level forward already there, if any
        self.dropout = _has_dropout(tower)  # then copies differ in training mode: no sharing at all
        self.cache_features = cache_features and not self.dropout
        self.cache: dict[tuple, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        self.cached_images = 0
        self.stats = TowerStats()

    def clear(self) -> None:
        self.cache.clear()
        self.cached_images = 0

    def _encode(self, pixels: torch.Tensor, grid: torch.Tensor, **kwargs):
        if self.inner is not None:
            return self.inner(pixels, grid_thw=grid, **kwargs)
        return type(self.tower).forward(self.tower, pixels, grid_thw=grid, **kwargs)

    def __call__(self, hidden_states: torch.Tensor, grid_thw: torch.Tensor | None = None, **kwargs):
        if grid_thw is None or (self.dropout and self.tower.training) or kwargs.get("output_hidden_states") or kwargs.get("output_attentions") or kwargs.get("return_dict") is False:
            return self._encode(hidden_states, grid_thw, **kwargs)
        self.stats.calls += 1
        rows = grid_thw.prod(-1).tolist()  # patch rows of each image
        grids = [tuple(g) for g in grid_thw.tolist()]
        starts = [0]
        for r in rows[:-1]:
            starts.append(starts[-1] + r)
        slices = [hidden_states[s : s + r] for s, r in zip(starts, rows)]
        fingerprints = _fingerprints(hidden_states, rows)
        use_cache = self.cache_features and not any(p.requires_grad for p in self.tower.parameters())
        state = _autocast_state(hidden_states.device)

        # Each image is either a copy of an earlier image of this call, a cache hit, or new.
        source: list[tuple[str, int]] = []  # ("new", index into `unique`) or ("hit", index into `hits`)
        unique: list[int] = []  # image indices to encode
        hits: list[tuple[torch.Tensor, torch.Tensor]] = []
        seen: dict[tuple, list[int]] = {}  # (grid, fingerprint) -> positions in `unique`
        for i, (grid, fp) in enumerate(zip(grids, fingerprints)):
            key = (grid, fp)
            match = next((u for u in seen.get(key, ()) if torch.equal(slices[unique[u]], slices[i])), None)
            if match is not None:
                source.append(("new", match))
                continue
            if use_cache:
                entry = next((e for e in self.cache.get((state, *key), ()) if torch.equal(e[0], slices[i])), None)
                if entry is not None:
                    hits.append((entry[1], entry[2]))
                    source.append(("hit", len(hits) - 1))
                    continue
            seen.setdefault(key, []).append(len(unique))
            source.append(("new", len(unique)))
            unique.append(i)
        self.stats.images_in += len(grids)
        self.stats.images_encoded += len(unique)
        self.stats.cache_hits += len(hits)

        if not hits and len(unique) == len(grids):
            out = self._encode(hidden_states, grid_thw, **kwargs)  # nothing repeated: the plain call
            if use_cache:
                self._store(out, slices, rows, grids, fingerprints, unique, state)
            return out
        out = None
        if unique:
            pixels = torch.cat([slices[i] for i in unique]) if len(unique) > 1 else slices[unique[0]]
            out = self._encode(pixels, grid_thw[unique], **kwargs)
            if use_cache:
                self._store(out, slices, rows, grids, fingerprints, unique, state)
        return self._gather(out, source, unique, hits, rows, template_grid=grid_thw)

    def _merge(self) -> int:
        return int(getattr(self.tower, "spatial_merge_size", 2)) ** 2

    def _store(self, out, slices, rows, grids, fingerprints, unique, state) -> None:
        """Keep the (detached) features of the images just encoded, for later passes of this step."""
        if self.cached_images + len(unique) > MAX_CACHED_IMAGES:
            self.clear()
        merge = self._merge()
        p0 = m0 = 0
        for i in unique:
            r = rows[i]
            pooled = out.pooler_output[m0 : m0 + r // merge].detach()
            hidden = out.last_hidden_state[p0 : p0 + r].detach()
            self.cache.setdefault((state, grids[i], fingerprints[i]), []).append((slices[i], pooled, hidden))
            p0, m0 = p0 + r, m0 + r // merge
        self.cached_images += len(unique)

    def _gather(self, out, source, unique, hits, rows, template_grid):
        """Features of every requested image, in the caller's order: one index_select into the
        encoded rows (whose backward sums the gradients of shared images) and cached rows."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        merge = self._merge()
        pooled_parts, hidden_parts = [], []
        if out is not None:
            pooled_parts.append(out.pooler_output)
            hidden_parts.append(out.last_hidden_state)
        for pooled, hidden in hits:
            pooled_parts.append(pooled)
            hidden_parts.append(hidden)
        # Row offsets of each unique image, then of each hit, inside the concatenation.
        p_off, m_off = [], []
        p = m = 0
        for i in unique:
            p_off.append(p)
            m_off.append(m)
            p, m = p + rows[i], m + rows[i] // merge
        hit_p, hit_m = [], []
        for pooled, hidden in hits:
            hit_p.append(p)
            hit_m.append(m)
            p, m = p + hidden.shape[0], m + pooled.shape[0]
        p_index, m_index = [], []
        for i, (kind, j) in enumerate(source):
            ps, ms = (p_off[j], m_off[j]) if kind == "new" else (hit_p[j], hit_m[j])
            p_index.append(torch.arange(ps, ps + rows[i]))
            m_index.append(torch.arange(ms, ms + rows[i] // merge))
        pooled_all = torch.cat(pooled_parts) if len(pooled_parts) > 1 else pooled_parts[0]
        hidden_all = torch.cat(hidden_parts) if len(hidden_parts) > 1 else hidden_parts[0]
        device = pooled_all.device
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden_all.index_select(0, torch.cat(p_index).to(device)),
            pooler_output=pooled_all.index_select(0, torch.cat(m_index).to(device)),
        )


def _fingerprints(pixels: torch.Tensor, rows: list[int]) -> list[float]:
    """One float per image from a strided sample of its pixel rows: equal images get equal
    fingerprints; unequal ones almost always differ (``torch.equal`` settles every match).
    Deterministic weights, so the global RNG (and with it the sampling) is left alone."""
    sample = pixels[:, ::7].float()
    col = torch.cos(torch.arange(sample.shape[1], device=pixels.device, dtype=torch.float32) * 0.7311) + 1.5
    per_row = sample @ col
    out = []
    start = 0
    for r in rows:
        seg = per_row[start : start + r]
        w = torch.cos(torch.arange(r, device=pixels.device, dtype=torch.float32) * 0.3927) + 1.5
        out.append(seg @ w)
        start += r
    return torch.stack(out).tolist() if out else []


def _autocast_state(device: torch.device) -> tuple:
    kind = device.type if device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    if torch.is_autocast_enabled(kind):
        return (kind, torch.get_autocast_dtype(kind))
    return (kind, None)


def _has_dropout(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in module.modules())


class DedupPreprocess:
    """``_preprocess`` for an image processor: each distinct image of a call is resized and
    normalised once, and its rows of ``pixel_values`` (and its ``image_grid_thw`` row) are
    repeated for the copies.

    Applies where the output is Qwen2-VL's: ``pixel_values`` rows are the images' patches in
    order (``prod(image_grid_thw)`` rows each); any other output is computed the plain way."""

    images_in = 0
    images_processed = 0

    def _preprocess(self, images, *args, **kwargs):
        from transformers import BatchFeature

        plain = super()._preprocess  # the image processor's own class, next in the MRO
        images = list(images)
        first: dict[Any, list[int]] = {}
        unique: list[int] = []
        source: list[int] = []  # position in `unique` of each image
        for i, image in enumerate(images):
            key = _content_key(image)
            match = None if key is None else next((u for u in first.get(key, ()) if _same(images[unique[u]], image)), None)
            if match is None:
                match = len(unique)
                unique.append(i)
                if key is not None:
                    first.setdefault(key, []).append(match)
            source.append(match)
        stats = type(self)
        stats.images_in += len(images)
        if len(unique) < len(images):
            out = plain([images[i] for i in unique], *args, **kwargs)
            if set(out.keys()) == {"pixel_values", "image_grid_thw"}:
                stats.images_processed += len(unique)
                return BatchFeature(data=_repeat_rows(out["pixel_values"], out["image_grid_thw"], source))
        stats.images_processed += len(images)
        return plain(images, *args, **kwargs)


def _repeat_rows(pixels, grid, source: list[int]) -> dict:
    """``pixel_values`` / ``image_grid_thw`` of the distinct images, expanded to the caller's
    images (``source[i]``: which distinct image image ``i`` is); numpy or torch alike."""
    rows = [int(r) for r in grid.prod(-1).tolist()]
    offsets = [0]
    for r in rows[:-1]:
        offsets.append(offsets[-1] + r)
    row_index = [k for j in source for k in range(offsets[j], offsets[j] + rows[j])]
    if isinstance(pixels, torch.Tensor):
        return {"pixel_values": pixels[torch.tensor(row_index)], "image_grid_thw": grid[torch.tensor(source)]}
    import numpy as np

    return {"pixel_values": pixels[np.asarray(row_index)], "image_grid_thw": grid[np.asarray(source)]}


def _content_key(image: Any):
    """A hashable key of an image's content (shape, dtype, a digest of its bytes), or None for
    an input kind this does not know (which is then processed on its own)."""
    import numpy as np

    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().contiguous().numpy()
    elif isinstance(image, np.ndarray):
        array = np.ascontiguousarray(image)
    else:
        return None
    return (array.shape, str(array.dtype), hashlib.blake2b(array.tobytes(), digest_size=16).digest())


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.equal(a, b)
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


class SharedPrefill:
    """The ``forward`` of the generating model: a rollout prefill whose batch is groups of k
    identical consecutive prompts (TRL's G copies: same tokens, same mask, same images) runs
    on one row per group; the KV cache (``Cache.batch_repeat_interleave``) and the logits are
    then repeated k times, which is what the k identical rows would have computed. Qwen2-VL's
    M-RoPE positions were computed by ``generate`` for every row before the prefill and are
    sliced like the rest. Any other call (training passes, decode steps) goes through as is."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        # the forward in place when installed: TRL's fused-LM-head forward is an instance attribute too
        self.inner = model.__dict__.get("forward") or type(model).forward.__get__(model)
        self.__signature__ = inspect.signature(self.inner)  # generate() validates its kwargs by it
        text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        # in training mode, dropout gives each copy of a prompt its own prefill: nothing to share then
        self.dropout = _has_dropout(model) or float(getattr(text, "attention_dropout", 0.0) or 0.0) > 0
        self.prefills = 0
        self.rows_in = 0
        self.rows_run = 0
        self.grown_layers = 0  # cache layers switched to rollout_cache.GrowingLayer

    def _plain(self, *args, **kwargs):
        return self.inner(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        out = self._call(*args, **kwargs)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is not None and not torch.is_grad_enabled():  # generating: later steps append in place
            from reasonrft.rollout_cache import grow_in_place

            self.grown_layers += grow_in_place(cache)
        return out

    def _call(self, *args, **kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        ids = kwargs.get("input_ids")
        if args or (self.dropout and self.model.training) or torch.is_grad_enabled() or cache is None or not hasattr(cache, "batch_repeat_interleave") or ids is None or ids.dim() != 2 or ids.shape[0] < 2 or kwargs.get("inputs_embeds") is not None or cache.get_seq_length() != 0:
            return self._plain(*args, **kwargs)
        plan = _prompt_groups(kwargs, self.model.config)
        if plan is None:
            return self._plain(*args, **kwargs)
        k, image_inputs = plan
        batch = ids.shape[0]
        keep = torch.arange(0, batch, k, device=ids.device)
        sliced = {}
        for key, value in kwargs.items():
            if key in image_inputs:
                value = image_inputs[key]
            elif key == "position_ids" and torch.is_tensor(value) and value.dim() == 3 and value.shape[1] == batch:
                value = value[:, keep]  # M-RoPE: (4, batch, length)
            elif key not in ("cache_position", "cache", "past_key_values") and torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == batch:
                value = value[keep]
            sliced[key] = value
        out = self._plain(**sliced)
        cache.batch_repeat_interleave(k)
        out.logits = out.logits.repeat_interleave(k, dim=0)
        self.prefills += 1
        self.rows_in += batch
        self.rows_run += batch // k
        return out


def _prompt_groups(kwargs: dict, config: Any):
    """``(k, image_inputs)`` when the batch is groups of k identical consecutive rows (tokens,
    mask, token types and the rows' images), else None. ``image_inputs`` holds the image
    arguments for one row per group: ``mm_encoder_outputs`` (transformers 5 encodes the images
    before the prefill) or ``pixel_values`` / ``image_grid_thw``."""
    ids, mask, types = kwargs["input_ids"], kwargs.get("attention_mask"), kwargs.get("mm_token_type_ids")
    batch = ids.shape[0]

    def same(a: int, b: int) -> bool:
        return all(t is None or torch.equal(t[a], t[b]) for t in (ids, mask, types))

    k = 1
    while k < batch and same(0, k):
        k += 1
    if k == 1 or batch % k or not all(same(start, row) for start in range(0, batch, k) for row in range(start + 1, start + k)):
        return None
    encoded = kwargs.get("mm_encoder_outputs") or {}
    pixels, grid = kwargs.get("pixel_values"), kwargs.get("image_grid_thw")
    if kwargs.get("pixel_values_videos") is not None or encoded.get("video") is not None:
        return None
    if encoded.get("image") is None and pixels is None:
        return k, {}
    start_id = getattr(config, "vision_start_token_id", None)
    if start_id is None:
        return None
    first = [0]  # first image of each row (Qwen2-VL: one vision_start token per image)
    for n in (ids == start_id).sum(1).tolist():
        first.append(first[-1] + n)
    leaders = range(0, batch, k)
    keep = [i for start in leaders for i in range(first[start], first[start + 1])]
    if encoded.get("image") is not None:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        features = list(encoded["image"].pooler_output)  # one tensor per image
        if len(features) != first[-1] or not all(
            all(torch.equal(features[first[row] + j], features[first[start] + j]) for j in range(first[start + 1] - first[start])) for start in leaders for row in range(start + 1, start + k)
        ):
            return None
        return k, {"mm_encoder_outputs": {**encoded, "image": BaseModelOutputWithPooling(pooler_output=tuple(features[i] for i in keep))}}
    if grid is None or grid.shape[0] != first[-1]:
        return None
    image_rows = grid.prod(-1).tolist()
    offsets = [0]
    for r in image_rows:
        offsets.append(offsets[-1] + r)

    def image(i: int) -> torch.Tensor:
        return pixels[offsets[i] : offsets[i + 1]]

    for start in leaders:
        for row in range(start + 1, start + k):
            for j in range(first[start + 1] - first[start]):
                a, b = first[start] + j, first[row] + j
                if not torch.equal(grid[a], grid[b]) or not torch.equal(image(a), image(b)):
                    return None
    rows = [r for i in keep for r in range(offsets[i], offsets[i + 1])]
    return k, {"pixel_values": pixels[torch.tensor(rows, device=pixels.device)], "image_grid_thw": grid[torch.tensor(keep, device=grid.device)]}


# --------------------------------------------------------------------------- installing


def wrap_tower(tower: torch.nn.Module, cache_features: bool = True) -> DedupTower:
    """Wrap one vision tower's forward (idempotent); returns its ``DedupTower``."""
    return wrap_method(tower, "forward", DedupTower, tower, cache_features)


def unwrap_tower(tower: torch.nn.Module) -> None:
    wrapper = tower.__dict__.get("forward")
    if isinstance(wrapper, DedupTower):
        del tower.forward
        if wrapper.inner is not None:
            tower.forward = wrapper.inner


def wrap_processor(processor: Any) -> type | None:
    """Make a processor's image processor deduplicate images (idempotent); returns the class
    now in use (its ``images_in`` / ``images_processed`` count the work), or None when the
    image processor has no ``_preprocess`` to wrap.

    The instance's class becomes a subclass that adds ``DedupPreprocess._preprocess`` and keeps
    the original's name and module: ``to_dict`` / ``save_pretrained`` (which serialise the
    instance's ``__dict__`` and class name) write exactly what they wrote before."""
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None or not hasattr(type(image_processor), "_preprocess"):
        return None
    base = type(image_processor)
    if issubclass(base, DedupPreprocess):
        return base
    cls = type(base.__name__, (DedupPreprocess, base), {"__module__": base.__module__, "__qualname__": base.__qualname__})
    image_processor.__class__ = cls
    return cls


def share_prefill(model: Any) -> SharedPrefill | None:
    """Wrap the generating model's forward (idempotent; through PEFT/DDP wrappers) so that a
    rollout prefill runs once per group of identical prompts; None for a model without images."""
    model = _unwrap(model)
    if find_vision_tower(model) is None:
        return None
    return wrap_method(model, "forward", SharedPrefill, model)


@dataclass
class Installed:
    """What ``install`` wrapped: the towers (policy, and reference when separate), the
    processor, and the policy's forward (shared rollout prefill)."""

    towers: list[DedupTower]
    processor: type | None
    prefill: SharedPrefill | None = None

    def clear(self) -> None:
        for tower in self.towers:
            tower.clear()


def install(trainer: Any) -> Installed:
    """Encode each distinct image once per pass in a TRL ``GRPOTrainer`` (policy and reference
    towers, the processor), prefill each prompt once per rollout, and clear the frozen-tower
    cache after every optimizer step. Call it after constructing the trainer, before ``train``."""
    from transformers import TrainerCallback

    sharded = sharded_weights(trainer)
    towers = []
    for model in (trainer.model, getattr(trainer, "ref_model", None)):
        tower = find_vision_tower(model) if model is not None else None
        if tower is not None and all(tower is not t.tower for t in towers):
            towers.append(wrap_tower(tower, cache_features=not sharded))
    installed = Installed(towers=towers, processor=wrap_processor(getattr(trainer, "processing_class", None)), prefill=share_prefill(trainer.model))

    class ClearVisionCache(TrainerCallback):
        """Drop the cached frozen-tower features once a step's passes are done."""

        def on_step_end(self, args, state, control, **kwargs):
            installed.clear()

    trainer.add_callback(ClearVisionCache())
    return installed


def sharded_weights(trainer: Any) -> bool:
    """Whether the trainer's weights are sharded across ranks (FSDP or DeepSpeed ZeRO-3)."""
    return bool(getattr(trainer, "is_fsdp_enabled", False)) or _zero3(trainer)


def _zero3(trainer: Any) -> bool:
    plugin = getattr(getattr(getattr(trainer, "accelerator", None), "state", None), "deepspeed_plugin", None)
    return plugin is not None and getattr(plugin, "zero_stage", 0) == 3
