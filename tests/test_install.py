"""Each extra of pyproject.toml resolves, with pip, to a set the project supports.

``pip install --dry-run --report`` resolves without downloading wheels, but it reads package
metadata from the registry and takes minutes: these tests run only when asked for
(``REASONRFT_NETWORK_TESTS=1``, or ``-m network``), and skip with the reason when no
registry answers. The supported vLLM set: TRL 1.16's own ``vllm`` extra (vLLM 0.22 to 0.31),
which is what the ``vllm`` extra depends on; vLLM 0.31 wants transformers < 5.18, hence the
project's transformers floor of 5.17.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ["dev", "deepspeed", "vllm"]


def _resolve(extra: str) -> dict[str, dict]:
    """The packages ``pip install .[extra]`` would install: name -> metadata (from pip's report)."""
    if os.environ.get("REASONRFT_NETWORK_TESTS") != "1":
        pytest.skip("resolution against the package registry takes minutes: set REASONRFT_NETWORK_TESTS=1 to run it")
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--report", "-", "-c", str(ROOT / "constraints.txt"), f"{ROOT}[{extra}]"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if result.returncode != 0 and any(s in result.stderr for s in ("Failed to establish a new connection", "Temporary failure in name resolution", "No matching distribution found for setuptools")):
        pytest.skip(f"no package registry reachable: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    return {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"] for item in report["install"]}


def _requirements(metadata: dict, extra: str | None = None) -> list:
    """A package's requirements: the plain ones, or (with ``extra``) those of that extra."""
    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in metadata.get("requires_dist") or []]
    if extra is None:
        return [r for r in reqs if r.marker is None]
    return [r for r in reqs if r.marker is not None and r.marker.evaluate({"extra": extra})]


def _assert_satisfied(reqs: list, versions: dict) -> None:
    for req in reqs:
        name = req.name.lower().replace("_", "-")
        assert name in versions and req.specifier.contains(versions[name], prereleases=True), (str(req), versions.get(name))


@pytest.mark.parametrize("extra", EXTRAS)
def test_each_extra_resolves_to_a_supported_set(extra):
    from packaging.version import Version

    resolved = _resolve(extra)
    versions = {name: Version(meta["version"]) for name, meta in resolved.items()}
    assert versions["torch"].base_version == "2.13.0"  # constraints.txt: the CPU wheel's version
    assert versions["trl"].release[:2] == (1, 16)
    if extra == "vllm":
        _assert_satisfied(_requirements(resolved["trl"], "vllm"), versions)  # the vLLM range TRL supports
        _assert_satisfied([r for r in _requirements(resolved["vllm"]) if r.name in ("transformers", "torch")], versions)
    if extra == "deepspeed":
        assert versions["deepspeed"].release[:2] == (0, 19)
