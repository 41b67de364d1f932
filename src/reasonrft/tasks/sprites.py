"""Shaded pseudo-3D object sprites and a compositor, for CLEVR-like scenes.

Each (shape, color, material, pixel size, style) is drawn once, supersampled, as an RGBA
sprite with per-pixel shading, and cached; a scene is then a background copy plus one
shadow and one sprite paste per object, far to near (painter's algorithm). That keeps a
224x224 render well under a millisecond, which the >= 500 samples/s target needs.
The colour-free part of a sprite (its geometry and lighting, most of the cost) is computed
once per (shape, material, size, style) and shared by the 8 colours: a first draw then
costs about 0.5 ms instead of 2-3 ms, with the same pixels to the bit.

Materials differ visibly: ``rubber`` is matte (diffuse only, slightly desaturated);
``metal`` is dark in its body with a sharp white highlight and a reflected sky gradient;
``glass`` (used by other families) is translucent with a rim and a highlight.
Style ``textured`` (the counting family's appearance shift) adds a stripe pattern and
lights the scene from the other side.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (110, 110, 110),
    "red": (190, 40, 40),
    "blue": (45, 80, 220),
    "green": (35, 140, 30),
    "brown": (135, 80, 30),
    "purple": (135, 45, 200),
    "cyan": (40, 200, 200),
    "yellow": (235, 215, 50),
}
SUPERSAMPLE = 3


def _light(style: str) -> np.ndarray:
    direction = np.array([-0.55, 0.65, 0.55]) if style != "textured" else np.array([0.6, 0.6, 0.5])
    return direction / np.linalg.norm(direction)


def _shading(normals: np.ndarray, material: str, style: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The colour-free part of the shading at unit ``normals`` (..., 3), x right, y up, z to
    the viewer: ``(scale, offset)`` with ``rgb = _surface(base, material) * scale + offset``
    (float, 0..255; no offset for rubber). Split so that one shape's geometry and lighting
    are computed once for all its colours; the arithmetic per pixel is unchanged."""
    light = _light(style)
    diffuse = np.clip(normals @ light, 0.0, 1.0)[..., None]
    if material == "metal":
        half = light + np.array([0.0, 0.0, 1.0])
        half /= np.linalg.norm(half)
        specular = np.clip(normals @ half, 0.0, 1.0)[..., None] ** 40
        sky = (0.5 + 0.5 * normals[..., 1:2]) * 0.45  # reflected environment, bright above
        return 0.12 + 0.45 * diffuse + sky, 255.0 * 0.95 * specular
    if material == "glass":
        half = light + np.array([0.0, 0.0, 1.0])
        half /= np.linalg.norm(half)
        specular = np.clip(normals @ half, 0.0, 1.0)[..., None] ** 60
        return 0.55 + 0.35 * diffuse, 255.0 * 0.8 * specular
    return 0.30 + 0.80 * diffuse, None  # rubber: matte, see _surface


def _surface(base: np.ndarray, material: str) -> np.ndarray:
    """The colour a material scales: the base colour, or for rubber a little desaturated."""
    if material in ("metal", "glass"):
        return base
    grey = base.mean(axis=-1, keepdims=True)
    return 0.85 * base + 0.15 * grey


@lru_cache(maxsize=64)
def _stripes(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    stripes = np.where(((x + y) // (3 * SUPERSAMPLE)) % 2 == 0, 1.0, 0.62)[..., None]
    stripes.flags.writeable = False  # cached and shared
    return stripes


def _sphere_normals(size: int) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    r2 = u * u + v * v
    mask = r2 <= 1.0
    z = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    return np.stack([u, -v, z], axis=-1), mask


def _face_normals(shape: tuple[int, int], normal: tuple[float, float, float]) -> np.ndarray:
    n = np.asarray(normal, dtype=float)
    return np.broadcast_to(n / np.linalg.norm(n), (*shape, 3))


# Each ``_geometry_*`` returns (scale, offset, alpha) over the supersampled square: the
# shading terms of the surface seen at each pixel (zero where there is none) and coverage.


def _paint(terms: tuple, region: np.ndarray, onto: tuple) -> tuple:
    """``onto``'s terms, replaced by ``terms`` inside the boolean ``region`` (the surface in
    front there). Selecting the terms equals blending the colours with a 0/1 mask."""
    scale, offset = terms
    region = region[..., None]
    painted_scale = np.where(region, scale, onto[0])
    painted_offset = None if offset is None else np.where(region, offset, onto[1])
    return painted_scale, painted_offset


def _geometry_sphere(size: int, material: str, style: str) -> tuple:
    normals, mask = _sphere_normals(size)
    return (*_shading(normals, material, style), mask.astype(float))


def _geometry_cube(size: int, material: str, style: str) -> tuple:
    """A cube seen from the front and slightly above: front, top and right faces."""
    depth = size // 4
    side = size - depth
    empty = np.zeros((size, size, 1))
    terms = (empty, None if material == "rubber" else empty)
    alpha = np.zeros((size, size))
    faces = [
        ([(0, depth), (side, depth), (side, size), (0, size)], (0.0, 0.0, 1.0)),  # front
        ([(0, depth), (depth, 0), (size, 0), (side, depth)], (0.0, 1.0, 0.6)),  # top
        ([(side, depth), (size, 0), (size, side), (side, size)], (1.0, 0.0, 0.7)),  # right
    ]
    for polygon, normal in faces:
        mask_img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask_img).polygon(polygon, fill=255)  # not anti-aliased: 0 or 255
        mask = np.asarray(mask_img, dtype=float) / 255.0
        normals = _face_normals((size, size), normal)
        if material in ("metal", "glass"):  # a soft gradient across the face reads as gloss
            tilt = np.zeros((size, size, 3))
            tilt[..., 0] = np.linspace(-0.35, 0.35, size)[None, :]
            normals = normals + tilt
            normals = normals / np.linalg.norm(normals, axis=-1, keepdims=True)
        terms = _paint(_shading(normals, material, style), mask > 0, terms)
        alpha = np.maximum(alpha, mask)
    return (*terms, alpha)


def _geometry_round_solid(size: int, material: str, style: str, cone: bool) -> tuple:
    """A cylinder (or cone) standing upright: shaded side, elliptic top and bottom."""
    rim = size // 5  # height of the ellipses seen from slightly above
    y, x = np.mgrid[0:size, 0:size].astype(float)
    u = (x - (size - 1) / 2) / (size / 2)  # -1..1 across
    top_y, bottom_y = rim / 2, size - rim / 2
    half_width = np.ones_like(y)
    if cone:
        half_width = np.clip((y - top_y + 1) / (bottom_y - top_y), 0.0, 1.0)
    inside_side = (np.abs(u) <= half_width) & (y >= top_y) & (y <= bottom_y)
    bottom_ellipse = (u**2 + ((y - bottom_y) / (rim / 2)) ** 2) <= 1.0
    top_ellipse = (u**2 + ((y - top_y) / (rim / 2)) ** 2) <= 1.0
    nx = np.clip(u / np.maximum(half_width, 1e-3), -1, 1)
    side_normals = np.stack([nx, np.full_like(nx, 0.25 if cone else 0.0), np.sqrt(np.clip(1 - nx**2, 0, 1))], axis=-1)
    side_normals /= np.linalg.norm(side_normals, axis=-1, keepdims=True)
    empty = np.zeros((size, size, 1))
    body = inside_side | bottom_ellipse
    terms = _paint(_shading(side_normals, material, style), body, (empty, None if material == "rubber" else empty))
    alpha = body.astype(float)
    if not cone:
        top = _shading(_face_normals((size, size), (0.0, 1.0, 0.35)), material, style)
        terms = _paint(top, top_ellipse, terms)
        alpha = np.maximum(alpha, top_ellipse)
    return (*terms, alpha)


@lru_cache(maxsize=4096)
def object_sprite(shape: str, color: str, material: str, pixels: int, style: str = "plain") -> Image.Image:
    """An RGBA sprite ``pixels`` wide of one object, shaded, anti-aliased (cached): drawn
    ``SUPERSAMPLE`` times larger, coloured over the cached geometry, reduced with Lanczos."""
    size = pixels * SUPERSAMPLE
    scale, offset, alpha, edge = _geometry(shape, material, size, style)
    rgb = _surface(np.asarray(COLORS[color], dtype=float), material) * scale
    if offset is not None:
        rgb += offset
    if style == "textured":
        rgb *= _stripes(size, size)
    if edge is not None:  # glass: a bright rim
        rgb[edge] = rgb[edge] * 0.5 + 127
    np.clip(rgb, 0, 255, out=rgb)
    rgba = np.empty((size, size, 4), dtype=np.uint8)
    rgba[..., :3] = rgb  # float -> uint8 truncates, as astype does
    rgba[..., 3] = alpha
    return Image.fromarray(rgba, "RGBA").resize((pixels, pixels), Image.LANCZOS)


GEOMETRY_CACHE_BYTES = 64 * 2**20  # all four counting splits at 224 px need 46 MiB
_geometries: OrderedDict[tuple, tuple] = OrderedDict()  # least recently used first


def _geometry(shape: str, material: str, size: int, style: str) -> tuple:
    """What a sprite's colour does not change, computed once for all 8 colours: the shading
    terms (scale, offset) and the coverage (uint8 alpha) over the ``size`` square, and for
    glass its rim (a boolean mask); read-only arrays. Cached up to ``GEOMETRY_CACHE_BYTES``
    (a count limit would not bound memory: an entry's size grows with the image size's square)."""
    key = (shape, material, size, style)
    if key in _geometries:
        _geometries.move_to_end(key)
        return _geometries[key]
    if shape == "sphere":
        scale, offset, alpha = _geometry_sphere(size, material, style)
    elif shape == "cube":
        scale, offset, alpha = _geometry_cube(size, material, style)
    elif shape in ("cylinder", "cone"):
        scale, offset, alpha = _geometry_round_solid(size, material, style, cone=shape == "cone")
    else:
        raise ValueError(f"no sprite for shape {shape!r}")
    edge = None
    if material == "glass":
        alpha = alpha * 0.62
        edge = np.asarray(Image.fromarray((alpha > 0).astype(np.uint8) * 255).filter(ImageFilter.FIND_EDGES)) > 0
        alpha[edge] = 0.9
    alpha = (alpha * 255.0).astype(np.uint8)
    entry = (scale, offset, alpha, edge)
    for array in entry:
        if array is not None:
            array.flags.writeable = False
    _geometries[key] = entry
    while len(_geometries) > 1 and sum(_nbytes(e) for e in _geometries.values()) > GEOMETRY_CACHE_BYTES:
        _geometries.popitem(last=False)
    return entry


def _nbytes(entry: tuple) -> int:
    return sum(a.nbytes for a in entry if a is not None)


@lru_cache(maxsize=512)
def shadow_sprite(width: int) -> Image.Image:
    """A soft elliptic contact shadow, ``width`` wide."""
    height = max(2, width // 3)
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse([0, 0, width - 1, height - 1], fill=(0, 0, 0, 90))
    return img.filter(ImageFilter.GaussianBlur(max(1, width // 10)))


@lru_cache(maxsize=64)
def ground(width: int, height: int, style: str = "plain") -> Image.Image:
    """The background: a floor receding to a horizon, lit from above."""
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    if style == "textured":
        far, near = np.array([150.0, 140.0, 120.0]), np.array([205.0, 195.0, 170.0])
    else:
        far, near = np.array([140.0, 140.0, 145.0]), np.array([200.0, 200.0, 205.0])
    rgb = far + (near - far) * t
    rgb = np.broadcast_to(rgb, (height, width, 3))
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def composite(canvas: Image.Image, placements: list[tuple[Image.Image, int, int]]) -> Image.Image:
    """Paste RGBA sprites (sprite, left, top) onto ``canvas`` in the given order; in place."""
    for sprite, left, top in placements:
        canvas.paste(sprite, (left, top), sprite)
    return canvas
