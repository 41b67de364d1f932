"""Shaded pseudo-3D object sprites and a compositor, for CLEVR-like scenes.

Each (shape, color, material, pixel size, style) is drawn once, supersampled, as an RGBA
sprite with per-pixel shading, and cached; a scene is then a background copy plus one
shadow and one sprite paste per object, far to near (painter's algorithm). That keeps a
224x224 render well under a millisecond, which the >= 500 samples/s target needs.

Materials differ visibly: ``rubber`` is matte (diffuse only, slightly desaturated);
``metal`` is dark in its body with a sharp white highlight and a reflected sky gradient;
``glass`` (used by other families) is translucent with a rim and a highlight.
Style ``textured`` (the counting family's appearance shift) adds a stripe pattern and
lights the scene from the other side.
"""

from __future__ import annotations

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


def _shade(base: np.ndarray, normals: np.ndarray, material: str, style: str) -> np.ndarray:
    """RGB (float, 0..255) for unit ``normals`` (..., 3) with x right, y up, z to the viewer."""
    light = _light(style)
    diffuse = np.clip(normals @ light, 0.0, 1.0)[..., None]
    if material == "metal":
        half = light + np.array([0.0, 0.0, 1.0])
        half /= np.linalg.norm(half)
        specular = np.clip(normals @ half, 0.0, 1.0)[..., None] ** 40
        sky = (0.5 + 0.5 * normals[..., 1:2]) * 0.45  # reflected environment, bright above
        rgb = base * (0.12 + 0.45 * diffuse + sky) + 255.0 * 0.95 * specular
    elif material == "glass":
        half = light + np.array([0.0, 0.0, 1.0])
        half /= np.linalg.norm(half)
        specular = np.clip(normals @ half, 0.0, 1.0)[..., None] ** 60
        rgb = base * (0.55 + 0.35 * diffuse) + 255.0 * 0.8 * specular
    else:  # rubber: matte and a little desaturated
        grey = base.mean(axis=-1, keepdims=True)
        matte = 0.85 * base + 0.15 * grey
        rgb = matte * (0.30 + 0.80 * diffuse)
    return rgb


def _stripes(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.where(((x + y) // (3 * SUPERSAMPLE)) % 2 == 0, 1.0, 0.62)[..., None]


def _sphere_normals(size: int) -> tuple[np.ndarray, np.ndarray]:
    v, u = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    r2 = u * u + v * v
    mask = r2 <= 1.0
    z = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    return np.stack([u, -v, z], axis=-1), mask


def _face_normals(shape: tuple[int, int], normal: tuple[float, float, float]) -> np.ndarray:
    n = np.asarray(normal, dtype=float)
    return np.broadcast_to(n / np.linalg.norm(n), (*shape, 3))


def _render_sphere(size: int, base: np.ndarray, material: str, style: str) -> tuple[np.ndarray, np.ndarray]:
    normals, mask = _sphere_normals(size)
    return _shade(base, normals, material, style), mask.astype(float)


def _render_cube(size: int, base: np.ndarray, material: str, style: str) -> tuple[np.ndarray, np.ndarray]:
    """A cube seen from the front and slightly above: front, top and right faces."""
    depth = size // 4
    side = size - depth
    canvas = np.zeros((size, size, 3))
    alpha = np.zeros((size, size))
    faces = [
        ([(0, depth), (side, depth), (side, size), (0, size)], (0.0, 0.0, 1.0)),  # front
        ([(0, depth), (depth, 0), (size, 0), (side, depth)], (0.0, 1.0, 0.6)),  # top
        ([(side, depth), (size, 0), (size, side), (side, size)], (1.0, 0.0, 0.7)),  # right
    ]
    for polygon, normal in faces:
        mask_img = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask_img).polygon(polygon, fill=255)
        mask = np.asarray(mask_img, dtype=float) / 255.0
        normals = _face_normals((size, size), normal)
        if material in ("metal", "glass"):  # a soft gradient across the face reads as gloss
            tilt = np.zeros((size, size, 3))
            tilt[..., 0] = np.linspace(-0.35, 0.35, size)[None, :]
            normals = normals + tilt
            normals = normals / np.linalg.norm(normals, axis=-1, keepdims=True)
        rgb = _shade(base, normals, material, style)
        canvas = canvas * (1 - mask[..., None]) + rgb * mask[..., None]
        alpha = np.maximum(alpha, mask)
    return canvas, alpha


def _render_round_solid(size: int, base: np.ndarray, material: str, style: str, cone: bool) -> tuple[np.ndarray, np.ndarray]:
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
    side_rgb = _shade(base, side_normals, material, style)
    canvas = np.zeros((size, size, 3))
    body = inside_side | bottom_ellipse
    canvas[body] = side_rgb[body]
    alpha = body.astype(float)
    if not cone:
        top_rgb = _shade(base, _face_normals((size, size), (0.0, 1.0, 0.35)), material, style)
        canvas[top_ellipse] = top_rgb[top_ellipse]
        alpha = np.maximum(alpha, top_ellipse)
    return canvas, alpha


@lru_cache(maxsize=4096)
def object_sprite(shape: str, color: str, material: str, pixels: int, style: str = "plain") -> Image.Image:
    """An RGBA sprite ``pixels`` wide of one object, shaded, anti-aliased (cached)."""
    size = pixels * SUPERSAMPLE
    base = np.asarray(COLORS[color], dtype=float)
    if shape == "sphere":
        rgb, alpha = _render_sphere(size, base, material, style)
    elif shape == "cube":
        rgb, alpha = _render_cube(size, base, material, style)
    elif shape in ("cylinder", "cone"):
        rgb, alpha = _render_round_solid(size, base, material, style, cone=shape == "cone")
    else:
        raise ValueError(f"no sprite for shape {shape!r}")
    if style == "textured":
        rgb = rgb * _stripes(size, size)
    if material == "glass":
        alpha = alpha * 0.62
        edge = np.asarray(Image.fromarray((alpha > 0).astype(np.uint8) * 255).filter(ImageFilter.FIND_EDGES)) > 0
        rgb[edge] = rgb[edge] * 0.5 + 127
        alpha[edge] = 0.9
    rgba = np.concatenate([np.clip(rgb, 0, 255), alpha[..., None] * 255.0], axis=-1).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA").resize((pixels, pixels), Image.LANCZOS)


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
