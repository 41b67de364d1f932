"""The dataset PNG writer: what it writes decodes to the very pixels it was given."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reasonrft import png
from reasonrft.image_check import _png_decodes
from reasonrft.tasks import get_task


def _images():
    rng = np.random.default_rng(0)
    for mode, channels in (("L", None), ("RGB", 3), ("RGBA", 4)):
        for height, width in ((1, 1), (3, 5), (64, 48)):
            shape = (height, width) if channels is None else (height, width, channels)
            yield Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)  # noise: every byte value, wrap-around in Up
    yield get_task("counting").sample("test-ood-d", 0).images[0]  # a real render


def test_written_png_decodes_to_the_same_pixels(tmp_path):
    for i, image in enumerate(_images()):
        path = tmp_path / f"{i}.png"
        png.save(image, path)
        assert _png_decodes(path.read_bytes())  # CRCs, the whole zlib stream, the row filters
        with Image.open(path) as back:
            back.verify()
        with Image.open(path) as back:
            assert (back.format, back.mode, back.size) == ("PNG", image.mode, image.size)
            assert back.tobytes() == image.tobytes(), (image.mode, image.size)


@pytest.mark.parametrize("image", [Image.new("P", (4, 4), 3), Image.new("I;16", (4, 4), 300), Image.new("1", (9, 2), 1)], ids=lambda im: im.mode)
def test_other_modes_are_saved_by_pillow(tmp_path, image):
    assert png.encode(image) is None
    png.save(image, tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as back:
        assert back.mode == image.mode and back.convert("RGB").tobytes() == image.convert("RGB").tobytes()


def test_metadata_is_kept_by_leaving_it_to_pillow(tmp_path):
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    image.info["transparency"] = (1, 2, 3)  # Pillow writes it as a tRNS chunk
    assert png.encode(image) is None
    png.save(image, tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as back:
        assert back.info["transparency"] == (1, 2, 3)
