"""A small perspective renderer for CLEVR-like scenes: cubes, spheres and cylinders on a
round ground plane, seen by a pinhole camera that orbits the scene centre.

What: ``render(solids, camera, size)`` draws a list of ``Solid`` (shape, ground position,
half extent, colour, material) as an RGB image. The camera is set by azimuth, elevation,
distance and field of view; the light is fixed in the world, so moving the camera changes
the view, never the lighting.

How (fast enough for two renders per sample at >= 100 samples/s on one core):
- the backdrop and the ground disk are drawn once per (camera, size) and cached;
- each object becomes a few flat-shaded polygons (visible cube faces; cylinder side quads
  and top cap; a sphere as offset concentric disks that approximate its shading gradient),
  projected with plain float maths and drawn with ``PIL.ImageDraw`` in RGBA blend mode;
- occlusion by the painter's algorithm: contact shadows first, then objects from far to
  near by camera depth of their centre (objects stand apart on a plane, so that order is
  right); convex parts of one object never overlap among their visible faces;
- everything is drawn at ``supersample`` times the size and box-downsampled (anti-aliasing).

Materials differ visibly: ``rubber`` is matte (diffuse only, slightly desaturated);
``metal`` has a dark body, a reflected-sky gradient across each face and a sharp white
specular highlight; ``glass`` is translucent (alpha blend) with a light rim and a highlight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw

Vec = tuple[float, float, float]

SHAPES = ("cube", "sphere", "cylinder")
MATERIALS = ("glass", "metal", "rubber")
PLANE_RADIUS = 3.9  # radius of the drawn ground disk, world units
BACKDROP_TOP, BACKDROP_BOTTOM = (96, 100, 110), (150, 152, 158)
GROUND_RGB = (178, 176, 170)
SHADOW_RGBA = (40, 38, 36, 80)
RIM_RGBA = (245, 248, 250, 210)  # the light edge of glass
GLASS_ALPHA = 140  # of 255
SEGMENTS = 20  # polygon resolution of circles (cylinder caps, shadows)


def _normalize(v: Vec) -> Vec:
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return (v[0] / n, v[1] / n, v[2] / n)


def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


LIGHT: Vec = _normalize((-0.45, 0.85, 0.35))  # towards the light: above, left, in front (world frame)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking at the scene centre.

    World frame: x to the right and z towards the viewer of the centre camera, y up.
    ``azimuth`` (degrees) turns the camera about the vertical axis: 0 is the centre view,
    negative moves it to its left (towards -x), positive to its right.
    """

    azimuth: float = 0.0
    elevation: float = 45.0
    distance: float = 10.5
    fov: float = 40.0  # full field of view, degrees (the image is square)

    def __post_init__(self) -> None:
        if not 5.0 <= self.elevation <= 85.0:
            raise ValueError(f"elevation must be in [5, 85] degrees, got {self.elevation}")
        if not 4.0 <= self.distance <= 100.0:
            raise ValueError(f"distance must be in [4, 100], got {self.distance}")
        if not 10.0 <= self.fov <= 120.0:
            raise ValueError(f"fov must be in [10, 120] degrees, got {self.fov}")


@dataclass(frozen=True)
class Solid:
    """One object on the ground: a cube (``half`` = half side), a sphere (radius ``half``) or
    an upright cylinder (radius ``half``, height ``2 * half``), centred over ``(x, z)``."""

    shape: str
    x: float
    z: float
    half: float
    rgb: tuple[int, int, int]
    material: str


@dataclass(frozen=True)
class _View:
    """Camera basis and projection constants for one image width (pixels)."""

    position: Vec
    right: Vec
    up: Vec
    forward: Vec
    focal: float
    centre: float

    def depth(self, p: Vec) -> float:
        v = (p[0] - self.position[0], p[1] - self.position[1], p[2] - self.position[2])
        return _dot(v, self.forward)

    def project(self, p: Vec) -> tuple[float, float]:
        v = (p[0] - self.position[0], p[1] - self.position[1], p[2] - self.position[2])
        zc = _dot(v, self.forward)
        scale = self.focal / zc
        return (self.centre + _dot(v, self.right) * scale, self.centre - _dot(v, self.up) * scale)

    def to_eye(self, p: Vec) -> Vec:
        return _normalize((self.position[0] - p[0], self.position[1] - p[1], self.position[2] - p[2]))


@lru_cache(maxsize=64)
def _view(camera: Camera, width: int) -> _View:
    az, el = math.radians(camera.azimuth), math.radians(camera.elevation)
    position = (camera.distance * math.cos(el) * math.sin(az), camera.distance * math.sin(el), camera.distance * math.cos(el) * math.cos(az))
    forward = _normalize((-position[0], -position[1], -position[2]))
    right = _normalize(_cross(forward, (0.0, 1.0, 0.0)))
    up = _cross(right, forward)
    focal = (width / 2) / math.tan(math.radians(camera.fov) / 2)
    return _View(position, right, up, forward, focal, width / 2)


def project(camera: Camera, point: Vec, width: int) -> tuple[float, float]:
    """Pixel coordinates of a world point in an image ``width`` pixels wide."""
    return _view(camera, width).project(point)


def screen_box(camera: Camera, solid: Solid, width: int) -> tuple[float, float, float, float]:
    """Pixel bounding box (left, top, right, bottom) of a solid's bounding box corners."""
    view = _view(camera, width)
    h = solid.half
    points = [view.project((solid.x + dx, y, solid.z + dz)) for dx in (-h, h) for dz in (-h, h) for y in (0.0, 2 * h)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def depth(camera: Camera, solid: Solid) -> float:
    """Camera depth of the solid's centre (larger is farther)."""
    return _view(camera, 64).depth((solid.x, solid.half, solid.z))


# --------------------------------------------------------------------------- shading


def _material_rgb(rgb: tuple[int, int, int], diffuse: float, specular: float, sky: float, material: str) -> tuple[int, int, int]:
    """Colour of a surface patch given diffuse (n.l), specular (n.h) and sky (0..1, up-facing) terms."""
    diffuse = max(0.0, diffuse)
    if material == "metal":
        spec = max(0.0, specular) ** 24 * 255.0
        k = 0.14 + 0.42 * diffuse + 0.45 * sky * sky
        out = [c * k + spec for c in rgb]
    elif material == "glass":
        spec = max(0.0, specular) ** 40 * 200.0
        out = [c * (0.70 + 0.30 * diffuse) + 35.0 + spec for c in rgb]
    else:  # rubber: matte, a little desaturated
        grey = sum(rgb) / 3.0
        out = [(0.85 * c + 0.15 * grey) * (0.30 + 0.72 * diffuse) for c in rgb]
    return (min(255, int(out[0])), min(255, int(out[1])), min(255, int(out[2])))


def _shade(rgb: tuple[int, int, int], normal: Vec, eye: Vec, material: str) -> tuple[int, int, int]:
    half_vector = _normalize((LIGHT[0] + eye[0], LIGHT[1] + eye[1], LIGHT[2] + eye[2]))
    specular = _dot(normal, half_vector)
    if abs(normal[1]) < 1e-6:
        # a vertical surface: its highlight is a vertical streak where the normal meets the
        # half vector's horizontal direction (what a real upright metal side shows)
        flat = math.hypot(half_vector[0], half_vector[2])
        specular = (normal[0] * half_vector[0] + normal[2] * half_vector[2]) / flat
    return _material_rgb(rgb, _dot(normal, LIGHT), specular, 0.5 + 0.5 * normal[1], material)


def _fill(solid: Solid, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    return (*colour, GLASS_ALPHA if solid.material == "glass" else 255)


# --------------------------------------------------------------------------- shapes


def _lerp(a: Vec, b: Vec, t: float) -> Vec:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def _draw_cube(draw: ImageDraw.ImageDraw, view: _View, solid: Solid, ss: int) -> None:
    h, x, z = solid.half, solid.x, solid.z
    faces = (  # (normal, corners counter-clockwise, gloss direction across the face)
        ((0.0, 1.0, 0.0), ((x - h, 2 * h, z + h), (x + h, 2 * h, z + h), (x + h, 2 * h, z - h), (x - h, 2 * h, z - h))),
        ((0.0, 0.0, 1.0), ((x - h, 0.0, z + h), (x + h, 0.0, z + h), (x + h, 2 * h, z + h), (x - h, 2 * h, z + h))),
        ((0.0, 0.0, -1.0), ((x + h, 0.0, z - h), (x - h, 0.0, z - h), (x - h, 2 * h, z - h), (x + h, 2 * h, z - h))),
        ((1.0, 0.0, 0.0), ((x + h, 0.0, z + h), (x + h, 0.0, z - h), (x + h, 2 * h, z - h), (x + h, 2 * h, z + h))),
        ((-1.0, 0.0, 0.0), ((x - h, 0.0, z - h), (x - h, 0.0, z + h), (x - h, 2 * h, z + h), (x - h, 2 * h, z - h))),
    )
    for normal, corners in faces:
        centre = (x + normal[0] * h, h + normal[1] * h, z + normal[2] * h)
        eye = view.to_eye(centre)
        if _dot(normal, eye) <= 0.0:
            continue
        if solid.material == "metal":  # strips with tilted normals: a reflection gradient reads as gloss
            a, b, c, d = corners
            across = _normalize((b[0] - a[0], b[1] - a[1], b[2] - a[2]))
            strips = 5
            for i in range(strips):
                t0, t1 = i / strips, (i + 1) / strips
                tilt = (t0 + t1) - 1.0  # -1 .. 1 across the face
                n = _normalize((normal[0] + 0.7 * tilt * across[0], normal[1] + 0.7 * tilt * across[1], normal[2] + 0.7 * tilt * across[2]))
                quad = (_lerp(a, b, t0), _lerp(a, b, t1), _lerp(d, c, t1), _lerp(d, c, t0))
                draw.polygon([view.project(p) for p in quad], fill=_fill(solid, _shade(solid.rgb, n, eye, "metal")))
        else:
            points = [view.project(p) for p in corners]
            draw.polygon(points, fill=_fill(solid, _shade(solid.rgb, normal, eye, solid.material)))
            if solid.material == "glass":
                draw.line(points + points[:1], fill=RIM_RGBA, width=ss)


def _circle(x: float, y: float, z: float, r: float) -> list[Vec]:
    return [(x + r * math.cos(2 * math.pi * i / SEGMENTS), y, z + r * math.sin(2 * math.pi * i / SEGMENTS)) for i in range(SEGMENTS)]


def _hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Convex hull (monotone chain), counter-clockwise."""
    pts = sorted(points)

    def turn(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    upper: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and turn(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and turn(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def _draw_cylinder(draw: ImageDraw.ImageDraw, view: _View, solid: Solid, ss: int) -> None:
    h, x, z = solid.half, solid.x, solid.z
    bottom, top = _circle(x, 0.0, z, h), _circle(x, 2 * h, z, h)
    bottom_px, top_px = [view.project(p) for p in bottom], [view.project(p) for p in top]
    top_colour = _shade(solid.rgb, (0.0, 1.0, 0.0), view.to_eye((x, 2 * h, z)), solid.material)
    if solid.material == "glass":
        outline = _hull(bottom_px + top_px)
        draw.polygon(outline, fill=_fill(solid, _shade(solid.rgb, view.to_eye((x, h, z)), view.to_eye((x, h, z)), "glass")))
        draw.polygon(top_px, fill=(*top_colour, 60))
        draw.line(outline + outline[:1], fill=RIM_RGBA, width=ss)
        draw.line(top_px + top_px[:1], fill=RIM_RGBA, width=ss)
        return
    for i in range(SEGMENTS):
        j = (i + 1) % SEGMENTS
        angle = 2 * math.pi * (i + 0.5) / SEGMENTS
        normal = (math.cos(angle), 0.0, math.sin(angle))
        mid = (x + h * normal[0], h, z + h * normal[2])
        eye = view.to_eye(mid)
        if _dot(normal, eye) <= -0.05:
            continue
        draw.polygon((bottom_px[i], bottom_px[j], top_px[j], top_px[i]), fill=_shade(solid.rgb, normal, eye, solid.material))
    draw.polygon(top_px, fill=top_colour)


def _draw_sphere(draw: ImageDraw.ImageDraw, view: _View, solid: Solid, ss: int) -> None:
    centre = (solid.x, solid.half, solid.z)
    cx, cy = view.project(centre)
    radius = view.focal * solid.half / view.depth(centre)
    # the light direction on screen: where the bright side of the disk is
    lx, ly = _dot(LIGHT, view.right), -_dot(LIGHT, view.up)
    norm = math.hypot(lx, ly) or 1.0
    lx, ly = lx / norm, ly / norm
    eye = view.to_eye(centre)
    facing = _normalize((LIGHT[0] + eye[0], LIGHT[1] + eye[1], LIGHT[2] + eye[2]))  # normal at the brightest point
    if solid.material == "glass":
        colour = _material_rgb(solid.rgb, 0.6, 0.0, 0.5, "glass")
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*colour, GLASS_ALPHA), outline=RIM_RGBA, width=ss)
        layers: tuple[tuple[float, float], ...] = ()
    elif solid.material == "metal":
        layers = tuple((t, 0.1 + 0.9 * t) for t in (0.0, 0.15, 0.3, 0.45, 0.6, 0.75))
    else:
        layers = tuple((t, 0.12 + 0.88 * t) for t in (0.0, 0.12, 0.24, 0.36, 0.48, 0.6, 0.72, 0.84))
    for t, diffuse in layers:
        r = radius * (1.0 - 0.78 * t)
        ox, oy = cx + lx * (radius - r) * 0.75, cy + ly * (radius - r) * 0.75
        colour = _material_rgb(solid.rgb, diffuse, 0.0, 0.35 + 0.5 * t, solid.material)
        draw.ellipse((ox - r, oy - r, ox + r, oy + r), fill=colour)
    if solid.material in ("metal", "glass"):  # the specular spot, towards the light
        # spot offset: the half vector seen on screen
        sx, sy = _dot(facing, view.right), -_dot(facing, view.up)
        hx, hy = cx + sx * radius * 0.9, cy + sy * radius * 0.9
        r = radius * (0.16 if solid.material == "metal" else 0.12)
        draw.ellipse((hx - r, hy - r, hx + r, hy + r), fill=(255, 255, 255, 235 if solid.material == "metal" else 200))


_DRAW = {"cube": _draw_cube, "cylinder": _draw_cylinder, "sphere": _draw_sphere}


def _draw_shadow(draw: ImageDraw.ImageDraw, view: _View, solid: Solid) -> None:
    height = solid.half * (1.0 if solid.shape == "sphere" else 1.4)
    dx, dz = -LIGHT[0] / LIGHT[1] * height * 0.8, -LIGHT[2] / LIGHT[1] * height * 0.8
    ring = _circle(solid.x + dx, 0.0, solid.z + dz, solid.half * 1.15)
    draw.polygon([view.project(p) for p in ring], fill=SHADOW_RGBA)


# --------------------------------------------------------------------------- scene


@lru_cache(maxsize=32)
def _background(camera: Camera, width: int) -> Image.Image:
    """Backdrop gradient plus the ground disk, for one camera and width."""
    image = Image.linear_gradient("L").resize((width, width))
    top, bottom = BACKDROP_TOP, BACKDROP_BOTTOM
    bands = [Image.eval(image, lambda v, a=a, b=b: int(a + (b - a) * v / 255)) for a, b in zip(top, bottom)]
    image = Image.merge("RGB", bands)
    view = _view(camera, width)
    ring = [(PLANE_RADIUS * math.cos(2 * math.pi * i / 96), 0.0, PLANE_RADIUS * math.sin(2 * math.pi * i / 96)) for i in range(96)]
    ImageDraw.Draw(image).polygon([view.project(p) for p in ring], fill=GROUND_RGB)
    return image


def render(solids: list[Solid], camera: Camera, size: int, supersample: int = 2) -> Image.Image:
    """The scene as a ``size`` x ``size`` RGB image: ground, shadows, objects far to near."""
    for solid in solids:
        if solid.shape not in _DRAW or solid.material not in MATERIALS:
            raise ValueError(f"cannot draw a {solid.material} {solid.shape}")
    width = size * supersample
    view = _view(camera, width)
    canvas = _background(camera, width).copy()
    draw = ImageDraw.Draw(canvas, "RGBA")
    for solid in solids:
        _draw_shadow(draw, view, solid)
    for solid in sorted(solids, key=lambda s: -view.depth((s.x, s.half, s.z))):
        _DRAW[solid.shape](draw, view, solid, supersample)
    return canvas.reduce(supersample) if supersample > 1 else canvas
