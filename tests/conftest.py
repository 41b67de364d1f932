"""Shared fixtures: one nano model per test session (built here, never downloaded)."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# DeepSpeed's CPU op, as scripts/bootstrap.sh built it: in this venv (inherited by the launched processes)
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))


@pytest.fixture(scope="session")
def nano_model(tmp_path_factory) -> str:
    """A freshly initialised nano Qwen2-VL whose tokenizer knows every registered task."""
    from reasonrft import modeling

    out = tmp_path_factory.mktemp("models") / "nano"
    modeling.init_model("nano", out, seed=0, corpus=modeling.training_corpus(samples_per_split=12))
    return str(out)


@pytest.fixture(scope="session")
def fresh_base(tmp_path_factory):
    """``(directory, fresh)`` from ``modeling.starting_model("", DIR)`` where no base is shipped:
    the nano model it builds (default corpus, seed 0), built once for the tests that need one."""
    from reasonrft import modeling

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(modeling, "shipped_base", lambda: None)  # as in a package without a base
        return modeling.starting_model("", tmp_path_factory.mktemp("fresh") / "base")


def _solid_colour_records(n: int, prefix: str, rng, size: int) -> list:
    """``n`` solid-colour images (each colour jittered by up to 20 per channel) asking "What
    color is the image?": only the pixels carry the answer (chance: 1 in 8)."""
    from PIL import Image

    from reasonrft import data
    from reasonrft.tasks.sprites import COLORS

    out = []
    for i in range(n):
        color = rng.choice(sorted(COLORS))
        rgb = tuple(min(255, max(0, v + rng.randint(-20, 20))) for v in COLORS[color])
        out.append(data.Record(f"{prefix}{i}", [Image.new("RGB", (size, size), rgb)], "What color is the image?", color))
    return out


@pytest.fixture(scope="session")
def colour_records():
    """``colour_records(n, prefix, rng, size)``: the learnable problem of the pixel and GRPO-direction tests."""
    return _solid_colour_records
