"""The nano Qwen2-VL: a real ``Qwen2VLForConditionalGeneration``, tiny, with our own tokenizer.

``init_model(size, out)`` builds a model directory that loads like any Qwen2-VL checkpoint:
- a byte-level BPE tokenizer trained on the project's own task text and prompts, with
  Qwen2's pre-tokenizer regex, the Qwen2-VL special tokens and chat template;
- the PIL image processor of Qwen2-VL (torchvision is not usable on these machines);
- a ``Qwen2VLConfig`` whose special-token ids come from that tokenizer, whose
  ``mrope_section`` sums to head_dim / 2 and whose vision output width equals the language
  model's hidden size; weights are randomly initialised from ``seed``.

``load_model`` / ``load_processor`` read back any local Qwen2-VL-family directory (ours or a
real Qwen2-VL / Qwen2.5-VL checkpoint), so every stage accepts either.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from reasonrft.errors import UserError

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Qwen2's pre-tokenizer: contractions, letter runs, single digits, punctuation, whitespace.
QWEN2_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ModelSize:
    """Widths and depths of a nano-family model; ``head_dim = hidden // heads``."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vision_depth: int
    vision_width: int
    vision_heads: int
    vocab: int
    max_pixels: int  # images are resized to at most this many pixels (224*224 -> 64 tokens)

    @property
    def mrope_section(self) -> list[int]:
        half = self.hidden // self.heads // 2  # the three sections (t, h, w) must sum to head_dim / 2
        return [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]


SIZES: dict[str, ModelSize] = {
    # about 4 M parameters: the CPU default
    "nano": ModelSize(256, 4, 4, 2, 768, 2, 128, 4, 2048, 224 * 224),
    # nano's language model over a vision tower of 4 layers of width 192 (nano's: 2 of 128),
    # about 6.7 M parameters: the dense phase's attributes reach 88-91% of cells where nano's
    # stop at 81-82% (docs/results.md 4.1, run N)
    "nano-deep-vision": ModelSize(256, 4, 4, 2, 768, 4, 192, 4, 2048, 224 * 224),
    # about 35 M parameters: for a GPU
    "small": ModelSize(512, 8, 8, 4, 1536, 4, 256, 4, 4096, 224 * 224),
    # nano's language model with a vision tower that costs what Qwen2-VL-2B's does relative to
    # its LM at the GRPO recipe's image size (448 px images: 1,024 patches, 256 visual tokens;
    # the FLOP arithmetic is in benchmarks/bench_grpo.py): for benchmarks on a CPU
    "2b-proportioned": ModelSize(256, 4, 4, 2, 768, 4, 128, 4, 2048, 448 * 448),
}


# --------------------------------------------------------------------------- tokenizer


def training_corpus(samples_per_split: int = 60, seed: int = 0) -> list[str]:
    """Text the tokenizer learns from: every registered task's problems, chains of thought,
    answers and prompts (all styles, all splits), its fixed strings, and extra providers."""
    from reasonrft.tasks import TASKS, PROMPT_STYLES, get_task
    from reasonrft import tasks as _  # noqa: F401

    texts: list[str] = ["You are a helpful assistant."]
    for name in sorted(TASKS):
        task = get_task(name)
        texts.extend(task.corpus())
        for split in task.splits:
            for idx in range(samples_per_split):
                s = task.sample(split, idx, seed)
                texts.extend(task.build_prompt(s.problem, s.answer, style) for style in PROMPT_STYLES)
                texts.append(f"<think>\n{s.cot}\n</think>\n<answer>\n{s.answer}\n</answer>")
    texts.extend(_extra_corpus())
    return texts


def _extra_corpus() -> list[str]:
    """Text of the generic-perception pretraining data, when that module is present."""
    try:
        from reasonrft import pretrain_data
    except ImportError:
        return []
    return pretrain_data.corpus()


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer (Qwen2 pre-tokenizer) wrapped as a transformers tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
        padding_side="left",
        extra_special_tokens=["<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
    )
    tokenizer.chat_template = qwen2_5_vl_chat_template
    return tokenizer


# --------------------------------------------------------------------------- processor


@functools.cache
def _processor_class():
    from transformers import ProcessorMixin, Qwen2VLProcessor

    class NanoQwen2VLProcessor(Qwen2VLProcessor):
        """Qwen2VLProcessor without a video processor (which needs torchvision, unusable here).

        ``ProcessorMixin`` derives the sub-processors from the ``__init__`` signature, so this
        signature simply leaves ``video_processor`` out; everything else is Qwen2VLProcessor's.
        """

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = "<|image_pad|>"
            self.video_token = "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return NanoQwen2VLProcessor


def make_processor(tokenizer, max_pixels: int, min_pixels: int = 56 * 56):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )
    return _processor_class()(image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template)


def load_processor(path: str | os.PathLike, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of a model directory; falls back to assembling it from the tokenizer and
    the PIL image processor where ``AutoProcessor`` cannot (no torchvision on this machine).
    ``min_pixels`` / ``max_pixels`` replace the directory's image-size bounds (None: keep them)."""
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    path = _check_model_dir(path)
    try:
        processor = AutoProcessor.from_pretrained(path)
        if getattr(processor, "image_processor", None) is not None and getattr(processor, "tokenizer", None) is not None:
            _left_pad(processor.tokenizer)
            return _limit_pixels(processor, min_pixels, max_pixels)
    except Exception:  # noqa: BLE001  (missing video processor / torchvision: assemble it below)
        pass
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
    processor = _processor_class()(image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template)
    _left_pad(tokenizer)
    return _limit_pixels(processor, min_pixels, max_pixels)


def check_pixel_limits(min_pixels: int | None, max_pixels: int | None) -> None:
    """For a stage config's ``__post_init__``: each bound, when set, positive, and min <= max."""
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive number of pixels, got {value}")
    if min_pixels is not None and max_pixels is not None and min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must be <= max_pixels ({max_pixels})")


def pixel_limits(processor) -> tuple[int, int]:
    """The (min_pixels, max_pixels) a Qwen2-VL image processor resizes every image into."""
    size = processor.image_processor.size
    return size["shortest_edge"], size["longest_edge"]


def _limit_pixels(processor, min_pixels: int | None, max_pixels: int | None):
    """Set the image processor's pixel bounds. Transformers 5 keeps Qwen2-VL's ``min_pixels`` /
    ``max_pixels`` as ``size["shortest_edge"]`` / ``size["longest_edge"]`` (its ``__init__``
    maps the old keys there, and ``resize`` passes them to ``smart_resize``), so setting ``size``
    changes both the pixel values and the number of image tokens, and ``save_pretrained`` keeps it."""
    if min_pixels is None and max_pixels is None:
        return processor
    from transformers.image_utils import SizeDict

    low, high = pixel_limits(processor)
    low, high = low if min_pixels is None else min_pixels, high if max_pixels is None else max_pixels
    if low > high:
        raise UserError(f"min_pixels {low} > max_pixels {high} (an unset bound is the model directory's own)")
    processor.image_processor.size = SizeDict(**{**dict(processor.image_processor.size), "shortest_edge": low, "longest_edge": high})
    return processor


def _left_pad(tokenizer) -> None:
    tokenizer.padding_side = "left"  # batched generation needs the prompts flush right
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


# --------------------------------------------------------------------------- model


def build_config(size: ModelSize, tokenizer):
    from transformers import Qwen2VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": size.mrope_section},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    vision = dict(
        depth=size.vision_depth,
        embed_dim=size.vision_width,
        num_heads=size.vision_heads,
        hidden_size=size.hidden,  # the merger projects vision features to the LM width
        mlp_ratio=4,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    return Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def _model_size(size_name: str) -> ModelSize:
    if size_name not in SIZES:
        raise UserError(f"unknown model size {size_name!r}; choose from {', '.join(SIZES)}")
    return SIZES[size_name]


def _new_model(config, seed: int):
    """A randomly initialised Qwen2-VL of ``config`` (drawn after seeding torch with ``seed``),
    generating with its own end, pad and start tokens."""
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    text = config.text_config
    model.generation_config = GenerationConfig(eos_token_id=text.eos_token_id, pad_token_id=text.pad_token_id, bos_token_id=text.bos_token_id)
    return model


def _save_new_model(out: str | os.PathLike, model, processor, info: dict) -> Path:
    """Write a newly built model, its processor and ``reasonrft.json`` (``info`` plus the
    parameter count) to ``out``, atomically."""
    from reasonrft.io import atomic_dir

    with atomic_dir(Path(out)) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "reasonrft.json").write_text(json.dumps({**info, "parameters": count_parameters(model)}, indent=2))
    return Path(out)


def init_model(size_name: str, out: str | os.PathLike, seed: int = 0, corpus: list[str] | None = None) -> Path:
    """Build a randomly initialised nano-family Qwen2-VL with a freshly trained tokenizer; save it."""
    size = _model_size(size_name)
    tokenizer = train_tokenizer(corpus if corpus is not None else training_corpus(), size.vocab)
    processor = make_processor(tokenizer, size.max_pixels)
    model = _new_model(build_config(size, tokenizer), seed)
    return _save_new_model(out, model, processor, {"size": size_name, "seed": seed})


def fresh_language_model(source: str | os.PathLike, size_name: str, out: str | os.PathLike, seed: int = 0) -> Path:
    """Save at ``out`` a model with ``source``'s tokenizer, processor and trained vision tower
    (merger included) but a randomly initialised ``size_name`` language model: for a base
    whose language model learnt habits (reading the palette, not the named object) that a
    fresh one learns past faster (docs/results.md 4.1). The vision towers must be the same size."""
    import torch

    size = _model_size(size_name)
    processor, trained = load_processor(source), load_model(source, dtype=torch.float32)
    config = build_config(size, processor.tokenizer)
    if config.vision_config.to_dict() | {"dtype": None} != trained.config.vision_config.to_dict() | {"dtype": None}:
        raise UserError(f"{source}: its vision tower is not a {size_name} one; a fresh {size_name} language model cannot read it")
    model = _new_model(config, seed)
    model.model.visual.load_state_dict(trained.model.visual.state_dict())
    return _save_new_model(out, model, processor, {"size": size_name, "seed": seed, "vision_from": Path(source).name})


def graft_vision(source: str | os.PathLike, vision_source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Save at ``out`` ``source``'s language model, tokenizer and processor with
    ``vision_source``'s vision tower (merger included), of whatever depth and width: for a
    trained language model (its arithmetic, copying and format) to learn to read a better
    vision tower instead of starting over. The two must share the tokenizer, and the merger
    must project to the language model's width."""
    import torch
    from transformers import Qwen2VLConfig

    processor, language = load_processor(source), load_model(source, dtype=torch.float32)
    seeing = load_model(vision_source, dtype=torch.float32)
    if load_processor(vision_source).tokenizer.get_vocab() != processor.tokenizer.get_vocab():
        raise UserError(f"{vision_source}: its tokenizer is not {source}'s; a vision tower can only be grafted between models of one tokenizer")
    width = language.config.text_config.hidden_size
    if seeing.config.vision_config.hidden_size != width:
        raise UserError(f"{vision_source}: its merger projects to width {seeing.config.vision_config.hidden_size}, {source}'s language model reads {width}")
    config = Qwen2VLConfig.from_dict({**language.config.to_dict(), "vision_config": seeing.config.vision_config.to_dict()})
    model = _new_model(config, seed=0)  # every weight is overwritten below
    state = {k: v for k, v in language.state_dict().items() if ".visual." not in f".{k}"}
    state.update({k: v for k, v in seeing.state_dict().items() if ".visual." in f".{k}"})
    model.load_state_dict(state, strict=True)
    model.generation_config = language.generation_config
    return _save_new_model(out, model, processor, {"language_model_from": Path(source).name, "vision_from": Path(vision_source).name})


def shipped_base() -> Path | None:
    """The pretrained nano base shipped inside the package (``reasonrft/base``), if present."""
    path = Path(__file__).parent / "base"
    return path if (path / "config.json").is_file() and (path / "model.safetensors").is_file() else None


def starting_model(model: str, fresh_dir: Path, size: str = "nano", seed: int = 0) -> tuple[Path, bool]:
    """The model a pipeline starts from, and whether it is freshly built (vision tower untrained):
    ``model`` when given, else the shipped base, else a new ``size`` model built at
    ``fresh_dir`` (reused when a finished one is already there: ``init_model`` is reproducible)."""
    if model:
        return Path(model), False
    shipped = shipped_base()
    if shipped is not None:
        return shipped, False
    if not (Path(fresh_dir) / "config.json").is_file():
        init_model(size, fresh_dir, seed=seed)
    return Path(fresh_dir), True


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_model_dir(path: str | os.PathLike) -> str:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise UserError(f"{p}: not a model directory (no config.json); build one with `reasonrft model init --out {p}`")
    return str(p)


def load_model(path: str | os.PathLike, dtype: Any = None):
    """``AutoModelForImageTextToText.from_pretrained`` of a local directory, with a clear error.
    ``dtype`` None keeps the checkpoint's own (transformers' ``"auto"``: bf16 for real Qwen2-VL),
    right for inference; training passes ``torch.float32`` (``stages.common.load_training_model``)."""
    from transformers import AutoModelForImageTextToText

    path = _check_model_dir(path)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    return AutoModelForImageTextToText.from_pretrained(path, **kwargs)
