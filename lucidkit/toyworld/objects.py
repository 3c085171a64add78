"""The toy world's objects as ground-truth 3D Gaussian sets.

Every object is built from primitive surfaces covered with flat, nearly opaque Gaussian discs (one disc every
`SPACING` world units, its thin axis along the surface normal), coloured per disc, then scaled to fit a ball of
radius `FIT_RADIUS` centred at the origin, so that it fills the recipe's cameras (radius 5.2-5.5, fovy 0.32-0.60).

World conventions (docs/engine.md): z is up and objects face +x (a camera at azimuth 0 sees the front).

What exists:
- plain objects: one of `SHAPES` in one of `COLOURS` ("a red cube");
- patterned objects: a shape in two colours, `"striped"` (vertical bands, `PERIODS` periods around the z axis) or
  `"checkered"` (the same bands crossed with horizontal rows of about the same size) ("a blue and white
  checkered sphere");
- oriented objects (`ORIENTED`), whose front differs from their back and sides: a house (door and windows on the
  front, windows on the sides, a blank back wall, gable ends on the sides) and a penguin (white belly, eyes and
  orange beak and feet on the front, black back).

`build(ToyObject) -> dict` returns the raw (pre-activation) parameters in the layout of the engine's
`ParameterDict`: ``means [N,3]``, ``scales [N,3]`` (log standard deviations), ``quats [N,4]`` (wxyz),
``opacities [N]`` (logit), ``sh0 [N,1,3]`` (``rgb = 0.5 + C0 * sh0``), ``shN [N,0,3]`` (SH degree 0).
Colours carry a soft baked light (`LIGHT`), the same from every view. Building is deterministic: the same object
always gives the same tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814  # rgb = 0.5 + SH_C0 * sh0 (SH degree 0)

SHAPES = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid")
ORIENTED = ("house", "penguin")
ALL_SHAPES = SHAPES + ORIENTED
PATTERNS = ("plain", "striped", "checkered")

# Linear-ish sRGB in [0, 1]. White is the test background, so it is only ever a pattern's second colour.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "green": (0.12, 0.66, 0.16),
    "blue": (0.10, 0.24, 0.90),
    "yellow": (0.96, 0.84, 0.08),
    "purple": (0.56, 0.16, 0.76),
    "orange": (1.00, 0.50, 0.02),
}
PATTERN_COLOURS: dict[str, tuple[float, float, float]] = {**COLOURS, "white": (0.97, 0.97, 0.97)}
# The (first, second) colour pairs the training world uses for patterns; `build` accepts any pair.
PATTERN_PAIRS = (("red", "yellow"), ("blue", "white"), ("green", "white"))

SPACING = 0.04  # world units between neighbouring discs, before fitting
DISC_SIGMA = 0.62  # disc standard deviation in the surface, as a fraction of the spacing
DISC_THICKNESS = 0.15  # disc standard deviation along the normal, as a fraction of its in-surface one
OPACITY = 0.95
FIT_RADIUS = 0.58  # every object fits in the ball of this radius around the origin
PERIODS = 8  # pattern periods around the z axis (16 bands)
LIGHT = (0.3, 0.6, 0.74)  # direction toward a fixed light baked into the colours (view-independent shading)


@dataclass(frozen=True)
class ToyObject:
    """One object of the world. ``colour``/``colour2`` are None where they do not apply."""

    shape: str  # one of ALL_SHAPES
    colour: Optional[str] = None  # COLOURS name; None for oriented objects
    pattern: str = "plain"  # one of PATTERNS
    colour2: Optional[str] = None  # PATTERN_COLOURS name of a pattern's second colour

    @property
    def oriented(self) -> bool:
        """True when the object's front (+x) differs from its back and sides."""
        return self.shape in ORIENTED

    @property
    def prompt(self) -> str:
        """The caption without a view suffix: "a red cube", "an orange cone", "a red and yellow striped cube"."""
        if self.oriented:
            words = self.shape
        elif self.pattern == "plain":
            words = f"{self.colour} {self.shape}"
        else:
            words = f"{self.colour} and {self.colour2} {self.pattern} {self.shape}"
        return ("an " if words[0] in "aeiou" else "a ") + words

    def validate(self) -> "ToyObject":
        """Raise ValueError when the attributes do not name a buildable object; return self otherwise."""
        if self.shape not in ALL_SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; expected one of {ALL_SHAPES}")
        if self.oriented:
            if self.colour is not None or self.colour2 is not None or self.pattern != "plain":
                raise ValueError(f"a {self.shape} has its own colours; expected no colour or pattern")
            return self
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; expected one of {tuple(COLOURS)}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {self.pattern!r}; expected one of {PATTERNS}")
        if self.pattern == "plain" and self.colour2 is not None:
            raise ValueError("a plain object has one colour")
        if self.pattern != "plain" and (self.colour2 not in PATTERN_COLOURS or self.colour2 == self.colour):
            raise ValueError(f"a {self.pattern} object needs a second colour different from {self.colour!r}")
        return self


def world_objects() -> list[ToyObject]:
    """The training world, in a fixed order: every shape in every colour, every shape in every pattern of
    `PATTERN_PAIRS`, then the oriented objects (6*6 + 6*2*3 + 2 = 74 objects)."""
    objects = [ToyObject(shape, colour) for shape in SHAPES for colour in COLOURS]
    objects += [
        ToyObject(shape, c1, pattern, c2)
        for shape in SHAPES
        for pattern in PATTERNS[1:]
        for c1, c2 in PATTERN_PAIRS
    ]
    objects += [ToyObject(shape) for shape in ORIENTED]
    return objects


# --------------------------------------------------------------------------------------------------------------------
# Surface samplers: each returns points [n, 3] and unit normals [n, 3], about one point per SPACING^2 of area.
# --------------------------------------------------------------------------------------------------------------------


def _count(length: float, spacing: float = SPACING) -> int:
    return max(1, round(length / spacing))


def _ellipsoid(center, radii) -> tuple[Tensor, Tensor]:
    """Fibonacci lattice on an ellipsoid (near-uniform on a sphere; stretched on an ellipsoid)."""
    a, b, c = radii
    p = 1.6075  # Knud Thomsen's approximation of the ellipsoid's area
    area = 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    n = _count(area, SPACING**2)
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n  # [n]
    phi = i * math.pi * (3 - math.sqrt(5))  # golden angle steps
    r = torch.sqrt(1 - z * z)
    unit = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)  # [n, 3]
    radii_t = torch.tensor(radii, dtype=torch.float64)
    points = unit * radii_t + torch.tensor(center, dtype=torch.float64)
    normals = torch.nn.functional.normalize(unit / radii_t, dim=-1)
    return points, normals


def _rectangle(origin, edge_u, edge_v) -> tuple[Tensor, Tensor]:
    """A grid on the parallelogram origin + s*edge_u + t*edge_v (s, t in [0, 1]); normal = edge_u x edge_v."""
    o, u, v = (torch.tensor(x, dtype=torch.float64) for x in (origin, edge_u, edge_v))
    nu, nv = _count(u.norm().item()), _count(v.norm().item())
    s = (torch.arange(nu, dtype=torch.float64) + 0.5) / nu
    t = (torch.arange(nv, dtype=torch.float64) + 0.5) / nv
    ss, tt = torch.meshgrid(s, t, indexing="ij")
    points = o + ss.reshape(-1, 1) * u + tt.reshape(-1, 1) * v  # [n, 3]
    normal = torch.nn.functional.normalize(torch.linalg.cross(u, v), dim=0)
    return points, normal.expand_as(points).clone()


def _triangle(a, b, c) -> tuple[Tensor, Tensor]:
    """Rows parallel to edge ab, shrinking toward apex c; normal = (b - a) x (c - a)."""
    a, b, c = (torch.tensor(x, dtype=torch.float64) for x in (a, b, c))
    base = (b - a).norm().item()
    height = torch.linalg.cross(b - a, c - a).norm().item() / base
    rows = _count(height)
    points = []
    for k in range(rows):
        f = (k + 0.5) / rows  # 0 at the base, 1 at the apex
        left, right = a + f * (c - a), b + f * (c - b)
        n = _count(base * (1 - f))
        s = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        points.append(left + s[:, None] * (right - left))
    points = torch.cat(points)
    normal = torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=0)
    return points, normal.expand_as(points).clone()


def _disc(center_z: float, radius: float, up: bool) -> tuple[Tensor, Tensor]:
    """Concentric rings filling a horizontal disc at height center_z; normal +z (up) or -z."""
    rings = _count(radius)
    points = []
    for k in range(rings):
        r = (k + 0.5) * radius / rings
        n = _count(2 * math.pi * r)
        theta = (torch.arange(n, dtype=torch.float64) + 0.5 * (k % 2)) * 2 * math.pi / n
        points.append(torch.stack([r * torch.cos(theta), r * torch.sin(theta), torch.full_like(theta, center_z)], -1))
    points = torch.cat(points)
    normal = torch.tensor([0.0, 0.0, 1.0 if up else -1.0], dtype=torch.float64)
    return points, normal.expand_as(points).clone()


def _surface_of_revolution(profile: Callable[[Tensor], tuple[Tensor, Tensor]], length: float):
    """Rings around the z axis along a profile curve u in [0, 1] -> (radius, z), `length` = the curve's length.
    Normals come from the profile's tangent, pointing away from the axis."""
    rows = _count(length)
    u = (torch.arange(rows, dtype=torch.float64) + 0.5) / rows
    du = 1e-4
    r, z = profile(u)
    r2, z2 = profile(u + du)
    dr, dz = (r2 - r) / du, (z2 - z) / du  # profile tangent
    points, normals = [], []
    for k in range(rows):
        n = _count(2 * math.pi * r[k].item())
        theta = (torch.arange(n, dtype=torch.float64) + 0.5 * (k % 2)) * 2 * math.pi / n
        c, s = torch.cos(theta), torch.sin(theta)
        points.append(torch.stack([r[k] * c, r[k] * s, z[k].expand_as(theta)], -1))
        # Outward normal of the revolved curve: (dz, -dr) in the (radial, z) plane.
        nr, nz = dz[k], -dr[k]
        normals.append(torch.stack([nr * c, nr * s, nz.expand_as(theta)], -1))
    return torch.cat(points), torch.nn.functional.normalize(torch.cat(normals), dim=-1)


def _join(*parts: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return torch.cat([p for p, _ in parts]), torch.cat([n for _, n in parts])


def _box(lo, hi, skip: tuple[str, ...] = ()) -> tuple[Tensor, Tensor]:
    """The faces of an axis-aligned box, outward normals; ``skip`` names faces to leave out ("+z", "-x", ...)."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    dx, dy, dz = x1 - x0, y1 - y0, z1 - z0
    faces = {
        "+x": ((x1, y0, z0), (0, dy, 0), (0, 0, dz)),
        "-x": ((x0, y0, z0), (0, 0, dz), (0, dy, 0)),
        "+y": ((x0, y1, z0), (0, 0, dz), (dx, 0, 0)),
        "-y": ((x0, y0, z0), (dx, 0, 0), (0, 0, dz)),
        "+z": ((x0, y0, z1), (dx, 0, 0), (0, dy, 0)),
        "-z": ((x0, y0, z0), (0, dy, 0), (dx, 0, 0)),
    }
    return _join(*(_rectangle(*f) for name, f in faces.items() if name not in skip))


# --------------------------------------------------------------------------------------------------------------------
# Shapes: geometry only (points, normals), roughly unit size; `build` fits them to FIT_RADIUS.
# --------------------------------------------------------------------------------------------------------------------


def _cube():
    h = 0.4
    return _box((-h, -h, -h), (h, h, h))


def _sphere():
    return _ellipsoid((0.0, 0.0, 0.0), (0.5, 0.5, 0.5))


def _cylinder():
    r, h = 0.42, 0.42

    def side(u):
        return torch.full_like(u, r), -h + 2 * h * u

    return _join(_surface_of_revolution(side, 2 * h), _disc(h, r, up=True), _disc(-h, r, up=False))


def _cone():
    r, h = 0.45, 0.45

    def side(u):  # from the base rim up to the apex
        return r * (1 - u), -h + 2 * h * u

    return _join(_surface_of_revolution(side, math.hypot(r, 2 * h)), _disc(-h, r, up=False))


def _torus():
    big, small = 0.40, 0.18
    rows = _count(2 * math.pi * small)
    phi = (torch.arange(rows, dtype=torch.float64) + 0.5) * 2 * math.pi / rows  # around the tube
    points, normals = [], []
    for k in range(rows):
        ring = big + small * math.cos(phi[k])
        n = _count(2 * math.pi * ring)
        theta = (torch.arange(n, dtype=torch.float64) + 0.5 * (k % 2)) * 2 * math.pi / n
        c, s = torch.cos(theta), torch.sin(theta)
        nz = torch.full_like(theta, math.sin(phi[k]))
        points.append(torch.stack([ring * c, ring * s, small * nz], -1))
        normals.append(torch.stack([math.cos(phi[k]) * c, math.cos(phi[k]) * s, nz], -1))
    return torch.cat(points), torch.cat(normals)


def _pyramid():
    b, h = 0.42, 0.42
    apex = (0.0, 0.0, h)
    corners = [(b, -b, -h), (b, b, -h), (-b, b, -h), (-b, -b, -h)]  # counter-clockwise seen from above
    sides = [_triangle(corners[i], corners[(i + 1) % 4], apex) for i in range(4)]
    base = _rectangle((-b, -b, -h), (0, 2 * b, 0), (2 * b, 0, 0))
    return _join(*sides, base)


_GEOMETRY = {
    "cube": _cube,
    "sphere": _sphere,
    "cylinder": _cylinder,
    "cone": _cone,
    "torus": _torus,
    "pyramid": _pyramid,
}


def _pattern_colours(points: Tensor, obj: ToyObject) -> Tensor:
    """[n, 3] colours of the discs at ``points`` [n, 3] for a plain, striped or checkered object."""
    first = torch.tensor(COLOURS[obj.colour], dtype=torch.float64)
    if obj.pattern == "plain":
        return first.expand(points.shape[0], 3).clone()
    second = torch.tensor(PATTERN_COLOURS[obj.colour2], dtype=torch.float64)
    azimuth = torch.atan2(points[:, 1], points[:, 0])  # [n] in (-pi, pi]
    band = torch.floor((azimuth + math.pi) / (math.pi / PERIODS)).long()  # 2*PERIODS bands around z
    if obj.pattern == "checkered":
        # Rows about as tall as a band is wide at the object's typical radius (~0.4 -> ~0.16 units).
        row = torch.floor((points[:, 2] + 1.0) / (2 * math.pi * 0.4 / (2 * PERIODS))).long()
        band = band + row
    use_second = (band % 2 == 1)[:, None]  # [n, 1]
    return torch.where(use_second, second, first)


# --------------------------------------------------------------------------------------------------------------------
# Oriented objects: geometry and colours together.
# --------------------------------------------------------------------------------------------------------------------

_WALL = (0.93, 0.76, 0.50)
_ROOF = (0.58, 0.12, 0.10)
_DOOR = (0.32, 0.17, 0.07)
_WINDOW = (0.35, 0.68, 0.97)
_PENGUIN_BLACK = (0.07, 0.07, 0.10)
_PENGUIN_WHITE = (0.96, 0.96, 0.96)
_PENGUIN_ORANGE = (1.00, 0.52, 0.04)


def _paint(points: Tensor, base, regions) -> Tensor:
    """Colour ``points`` [n, 3] ``base``, then each (mask_fn, colour) of ``regions`` in order."""
    colours = torch.tensor(base, dtype=torch.float64).expand(points.shape[0], 3).clone()
    for mask_fn, colour in regions:
        colours[mask_fn(points)] = torch.tensor(colour, dtype=torch.float64)
    return colours


def _in(values: Tensor, lo: float, hi: float) -> Tensor:
    return (values >= lo) & (values <= hi)


def _house():
    """A house facing +x: gable roof with its ridge along y (gable ends on the sides), a door and two windows on
    the front wall, two windows on each side wall, a blank back wall."""
    wx, wy, z0, z1, ridge = 0.34, 0.42, -0.50, 0.05, 0.42
    walls = _box((-wx, -wy, z0), (wx, wy, z1), skip=("+z",))
    gables = _join(
        _triangle((wx, wy, z1), (-wx, wy, z1), (0.0, wy, ridge)),  # +y side, normal +y
        _triangle((-wx, -wy, z1), (wx, -wy, z1), (0.0, -wy, ridge)),  # -y side, normal -y
    )
    ex, ey, ez = wx + 0.08, wy + 0.05, z1 - 0.06  # eaves overhang
    roof = _join(
        _rectangle((ex, -ey, ez), (0, 2 * ey, 0), (-ex, 0, ridge - ez)),  # front slope, normal +x+z
        _rectangle((-ex, ey, ez), (0, -2 * ey, 0), (ex, 0, ridge - ez)),  # back slope, normal -x+z
    )
    wall_points, wall_normals = _join(walls, gables)
    front = lambda p: p[:, 0] > wx - 1e-6  # noqa: E731
    side = lambda p: p[:, 1].abs() > wy - 1e-6  # noqa: E731
    wall_colours = _paint(
        wall_points,
        _WALL,
        [
            (lambda p: front(p) & _in(p[:, 1], -0.11, 0.11) & _in(p[:, 2], z0, -0.11), _DOOR),
            (lambda p: front(p) & _in(p[:, 1].abs(), 0.19, 0.36) & _in(p[:, 2], -0.33, -0.07), _WINDOW),
            (lambda p: side(p) & _in(p[:, 0].abs(), 0.07, 0.25) & _in(p[:, 2], -0.30, -0.10), _WINDOW),
        ],
    )
    roof_points, roof_normals = roof
    roof_colours = _paint(roof_points, _ROOF, [])
    return (
        torch.cat([wall_points, roof_points]),
        torch.cat([wall_normals, roof_normals]),
        torch.cat([wall_colours, roof_colours]),
    )


def _penguin():
    """A penguin facing +x: black body and head, a white belly and eyes in front, an orange beak and feet."""
    body_c, body_r = (0.0, 0.0, -0.12), (0.30, 0.30, 0.40)
    head_c, head_r = (0.02, 0.0, 0.36), 0.19
    body = _ellipsoid(body_c, body_r)
    head = _ellipsoid(head_c, (head_r, head_r, head_r))
    wings = _join(*(_ellipsoid((-0.02, side * 0.29, -0.08), (0.16, 0.04, 0.28)) for side in (1, -1)))

    def beak_profile(u):  # a cone along +x: base at the head's front, tip ahead of it
        return 0.065 * (1 - u), u

    beak_points, beak_normals = _surface_of_revolution(beak_profile, 0.15)
    # The revolved profile runs along z; turn it to run along +x (z -> x, x -> -z) and scale its length.
    beak_points = torch.stack([0.17 + 0.15 * beak_points[:, 2], beak_points[:, 1], 0.36 - beak_points[:, 0]], -1)
    beak_normals = torch.stack([beak_normals[:, 2], beak_normals[:, 1], -beak_normals[:, 0]], -1)
    feet = _join(*(_ellipsoid((0.12, side * 0.11, -0.52), (0.12, 0.07, 0.03)) for side in (1, -1)))

    def belly(p):
        d = (p - torch.tensor(body_c, dtype=torch.float64)) / torch.tensor(body_r, dtype=torch.float64)
        return (d[:, 0] > 0.35) & (d[:, 2] < 0.75)

    def eyes(p):
        d = torch.nn.functional.normalize(p - torch.tensor(head_c, dtype=torch.float64), dim=-1)
        looks = [torch.tensor([0.72, side * 0.48, 0.5], dtype=torch.float64) for side in (1, -1)]  # eye directions
        return torch.stack([(d * look).sum(-1) > 0.975 for look in looks]).any(0)

    parts = [
        (body, _paint(body[0], _PENGUIN_BLACK, [(belly, _PENGUIN_WHITE)])),
        (head, _paint(head[0], _PENGUIN_BLACK, [(eyes, _PENGUIN_WHITE)])),
        (wings, _paint(wings[0], _PENGUIN_BLACK, [])),
        ((beak_points, beak_normals), _paint(beak_points, _PENGUIN_ORANGE, [])),
        (feet, _paint(feet[0], _PENGUIN_ORANGE, [])),
    ]
    return (
        torch.cat([p[0] for p, _ in parts]),
        torch.cat([p[1] for p, _ in parts]),
        torch.cat([c for _, c in parts]),
    )


# --------------------------------------------------------------------------------------------------------------------
# Gaussians from surface samples
# --------------------------------------------------------------------------------------------------------------------


def _quats_from_normals(normals: Tensor) -> Tensor:
    """[n, 4] wxyz unit quaternions rotating the local +z axis onto ``normals`` [n, 3] (unit)."""
    x, y, z = normals.unbind(-1)
    q = torch.stack([1 + z, -y, x, torch.zeros_like(z)], dim=-1)  # half-way rotation z -> n
    flipped = z < -1 + 1e-6  # n = -z: a half turn about x
    q[flipped] = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=q.dtype)
    return torch.nn.functional.normalize(q, dim=-1)


def _shade(colours: Tensor, normals: Tensor) -> Tensor:
    """Bake soft, view-independent lighting into ``colours`` [n, 3]: a half-Lambert term toward LIGHT, so that
    every face of a cube gets its own brightness (0.7 facing away .. 1.0 facing the light)."""
    light = torch.nn.functional.normalize(torch.tensor(LIGHT, dtype=normals.dtype), dim=0)
    facing = normals @ light  # [n] in [-1, 1]
    return colours * (0.7 + 0.3 * (0.5 + 0.5 * facing))[:, None]


def _gaussians(points: Tensor, normals: Tensor, colours: Tensor) -> dict[str, Tensor]:
    """Flat discs at ``points`` facing ``normals``, fitted to FIT_RADIUS; raw parameters (see module doc)."""
    # Fit: centre the bounding box on the origin, then scale the farthest point to FIT_RADIUS.
    centre = 0.5 * (points.amin(0) + points.amax(0))
    points = points - centre
    fit = FIT_RADIUS / points.norm(dim=-1).max()
    means = points * fit  # [n, 3]
    sigma = DISC_SIGMA * SPACING * float(fit)
    n = means.shape[0]
    log_scales = torch.log(torch.tensor([sigma, sigma, sigma * DISC_THICKNESS], dtype=torch.float64)).expand(n, 3)
    opacity_logit = math.log(OPACITY / (1 - OPACITY))
    return {
        "means": means.float().contiguous(),
        "scales": log_scales.float().contiguous(),
        "quats": _quats_from_normals(normals).float(),
        "opacities": torch.full((n,), opacity_logit),
        "sh0": ((colours.float() - 0.5) / SH_C0)[:, None, :].contiguous(),  # [n, 1, 3]
        "shN": torch.zeros(n, 0, 3),
    }


_CACHE: dict[ToyObject, dict[str, Tensor]] = {}


def build(obj: ToyObject) -> dict[str, Tensor]:
    """The ground-truth Gaussians of ``obj`` as raw parameters (see the module doc). Cached; returns copies."""
    obj.validate()
    if obj not in _CACHE:
        if obj.shape == "house":
            points, normals, colours = _house()
        elif obj.shape == "penguin":
            points, normals, colours = _penguin()
        else:
            points, normals = _GEOMETRY[obj.shape]()
            colours = _pattern_colours(points, obj)
        _CACHE[obj] = _gaussians(points, normals, _shade(colours, normals))
    return {name: t.clone() for name, t in _CACHE[obj].items()}


def activated(splats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Raw parameters -> what the renderer takes: means, quats (unit), scales (std devs), opacities, rgb."""
    return {
        "means": splats["means"],
        "quats": torch.nn.functional.normalize(splats["quats"], dim=-1),
        "scales": torch.exp(splats["scales"]),
        "opacities": torch.sigmoid(splats["opacities"]),
        "colors": (0.5 + SH_C0 * splats["sh0"][:, 0, :]).clamp(0, 1),
    }
