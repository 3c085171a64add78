"""3D Gaussian parameters (gsplat layout), their activations, their optimizers, and INRIA `.ply` files.

A scene is a `torch.nn.ParameterDict` of raw (pre-activation) tensors, exactly the layout gsplat's
`DefaultStrategy` edits (see docs/engine.md):

    means      [N, 3]       world position, z-up
    scales     [N, 3]       log of the per-axis standard deviation (world units)
    quats      [N, 4]       rotation quaternion, wxyz, not normalised
    opacities  [N]          logit of the opacity
    sh0        [N, 1, 3]    degree-0 spherical-harmonic colour coefficient (rgb = 0.5 + SH_C0 * sh0)
    shN        [N, K-1, 3]  higher SH coefficients, K = (degree + 1)^2 (0 rows for degree 0)

There is no scene class: optimizers are one Adam per parameter (`make_optimizers`), learning-rate schedules are
plain functions (`lr_at`, `apply_lrs`), and files are read and written by `read_ply` / `write_ply`.

The `.ply` layout is the one the INRIA 3DGS code writes and splat viewers read: one binary little-endian
`vertex` element of float32 properties

    x y z [nx ny nz] f_dc_0..2 f_rest_0..3(K-1)-1 opacity scale_0..2 rot_0..3

with raw values (logit opacity, log scales, wxyz quaternions) and f_rest stored channel-major: all red
coefficients, then all green, then all blue.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lucidkit.errors import UserError
from lucidkit.export import atomic_write

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical harmonic, 1 / (2 sqrt(pi)): rgb = 0.5 + SH_C0 * sh0."""

PARAM_NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN")


# ----------------------------------------------------------------------------------------------------------------
# Parameters and activations
# ----------------------------------------------------------------------------------------------------------------


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per colour channel up to `degree`: (degree + 1)^2."""
    return (degree + 1) ** 2


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> degree-0 SH coefficient (same shape)."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: torch.Tensor) -> torch.Tensor:
    """Degree-0 SH coefficient -> RGB (same shape; not clipped)."""
    return sh0 * SH_C0 + 0.5


def sh_degree_of(splats: torch.nn.ParameterDict | dict) -> int:
    """SH degree of a scene, from the size of `shN` ([N, K-1, 3])."""
    k = splats["shN"].shape[1] + 1
    degree = int(round(math.sqrt(k))) - 1
    if num_sh_bases(degree) != k:
        raise ValueError(f"shN has {k - 1} coefficient rows; expected (d+1)^2 - 1 for an SH degree d")
    return degree


def knn_mean_sq_dist(means: torch.Tensor, k: int = 3, chunk_elems: int = 2**24) -> torch.Tensor:
    """Mean squared distance from each point to its `k` nearest other points, `[N]`.

    Exact brute force, processed in row chunks of about `chunk_elems` distances so memory stays bounded
    (64 MB for the default) whatever N is. Runs on the device of `means`: 100k points take ~30 s on two CPU
    cores and milliseconds on a GPU. With fewer than two points there are no neighbours and 0 is returned.
    """
    n = means.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return torch.zeros(n, dtype=means.dtype, device=means.device)
    x = means - means.mean(dim=0)  # [N, 3] centred: the |a|^2 - 2ab + |b|^2 form loses less precision
    sq = (x * x).sum(dim=-1)  # [N]
    rows = max(1, chunk_elems // n)
    out = torch.empty(n, dtype=means.dtype, device=means.device)  # [N]
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        d2 = torch.addmm(sq[None, :], x[start:stop], x.T, alpha=-2.0) + sq[start:stop, None]  # [C, N]
        local = torch.arange(stop - start, device=means.device)  # [C]
        d2[local, local + start] = float("inf")  # a point is not its own neighbour
        nearest = d2.topk(k, dim=1, largest=False).values.clamp_min(0.0)  # [C, k]
        out[start:stop] = nearest.mean(dim=1)
    return out


def create_splats(
    means: torch.Tensor,
    rgb: torch.Tensor | None = None,
    opacity: float | torch.Tensor = 0.1,
    scales: float | torch.Tensor | None = None,
    sh_degree: int = 0,
    device: torch.device | str | None = None,
) -> torch.nn.ParameterDict:
    """Gaussians at `means` with identity rotations, as raw parameters in a ParameterDict.

    Args:
        means: `[N, 3]` positions (world units).
        rgb: `[N, 3]` colours in [0, 1]; None gives grey (0.5, i.e. sh0 = 0). Higher SH start at zero.
        opacity: opacity in (0, 1), a float or `[N]`; stored as a logit.
        scales: standard deviations in world units (not log): a float, `[N]` (isotropic) or `[N, 3]`.
            None = isotropic, sqrt of the mean squared distance to the 3 nearest neighbours (INRIA's init),
            at least 1e-7 squared so duplicate points do not get a zero scale.
        sh_degree: SH degree 0-3; sets the size of `shN`.
        device: where the parameters live; default: the device of `means`.

    Returns a ParameterDict with `means [N,3]`, `scales [N,3]` (log), `quats [N,4]` (wxyz), `opacities [N]`
    (logit), `sh0 [N,1,3]`, `shN [N,K-1,3]`, all float32.
    """
    device = torch.device(device) if device is not None else means.device
    means = means.detach().to(device=device, dtype=torch.float32)  # [N, 3]
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must be [N, 3], got {tuple(means.shape)}")
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"sh_degree must be 0-3, got {sh_degree}")
    n = means.shape[0]
    opacities = torch.as_tensor(opacity, dtype=torch.float32, device=device).expand(n)  # [N]
    if n and not bool(((opacities > 0) & (opacities < 1)).all()):
        raise ValueError("opacity must be strictly between 0 and 1 (it is stored as a logit)")

    if scales is None:
        dist2 = knn_mean_sq_dist(means).clamp_min(1e-7)  # [N]
        scales_t = dist2.sqrt()[:, None].expand(n, 3)  # [N, 3]
    else:
        scales_t = torch.as_tensor(scales, dtype=torch.float32, device=device)
        scales_t = scales_t[:, None] if scales_t.ndim == 1 else scales_t
        scales_t = scales_t.expand(n, 3)  # [N, 3]
    if rgb is None:
        sh0 = torch.zeros(n, 1, 3, device=device)  # [N, 1, 3]  grey
    else:
        sh0 = rgb_to_sh0(torch.as_tensor(rgb, dtype=torch.float32, device=device)).reshape(n, 1, 3)
    quats = torch.zeros(n, 4, device=device)  # [N, 4]
    quats[:, 0] = 1.0  # wxyz identity

    params = {
        "means": means.clone(),
        "scales": scales_t.log(),
        "quats": quats,
        "opacities": torch.logit(opacities),
        "sh0": sh0,
        "shN": torch.zeros(n, num_sh_bases(sh_degree) - 1, 3, device=device),
    }
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.contiguous()) for k, v in params.items()})


def activated(splats: torch.nn.ParameterDict | dict) -> dict:
    """Activated values for rendering: `means [N,3]`, `quats [N,4]` (unit, wxyz), `scales [N,3]` (exp),
    `opacities [N]` (sigmoid), `sh [N,K,3]` (sh0 and shN stacked), `sh_degree` (int). Differentiable."""
    return {
        "means": splats["means"],
        "quats": torch.nn.functional.normalize(splats["quats"], dim=-1),
        "scales": torch.exp(splats["scales"]),
        "opacities": torch.sigmoid(splats["opacities"]),
        "sh": torch.cat([splats["sh0"], splats["shN"]], dim=1),
        "sh_degree": sh_degree_of(splats),
    }


# ----------------------------------------------------------------------------------------------------------------
# Optimizers and learning-rate schedules
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class OptimConfig:
    """Adam learning rates per Gaussian parameter, decayed log-linearly from `*_init` to `*_final` over the run.

    Defaults are the LucidDreamer release's recipe (ISM.md). Positions are absolute world units: the recipe's
    value is INRIA's 1.6e-4 times a scene extent of 3.5.
    """

    means_lr_init: float = 5.6e-4
    """Learning rate of the positions at step 0."""
    means_lr_final: float = 5.6e-6
    """Learning rate of the positions at the last step."""
    sh0_lr_init: float = 5e-3
    """Learning rate of the base colour (sh0) at step 0."""
    sh0_lr_final: float = 3e-3
    """Learning rate of the base colour (sh0) at the last step."""
    shN_lr_ratio: float = 1.0 / 20.0
    """Learning rate of the higher SH coefficients (shN) as a fraction of sh0's."""
    scales_lr_init: float = 5e-3
    """Learning rate of the log scales at step 0."""
    scales_lr_final: float = 1e-3
    """Learning rate of the log scales at the last step."""
    quats_lr_init: float = 1e-3
    """Learning rate of the rotation quaternions at step 0."""
    quats_lr_final: float = 2e-4
    """Learning rate of the rotation quaternions at the last step."""
    opacities_lr: float = 0.05
    """Learning rate of the opacity logits (constant)."""
    adam_eps: float = 1e-15
    """Adam's epsilon (tiny, as in 3DGS: gradients of Gaussian parameters are very small)."""

    def lr_ranges(self) -> dict[str, tuple[float, float]]:
        """(initial, final) learning rate per parameter name."""
        return {
            "means": (self.means_lr_init, self.means_lr_final),
            "scales": (self.scales_lr_init, self.scales_lr_final),
            "quats": (self.quats_lr_init, self.quats_lr_final),
            "opacities": (self.opacities_lr, self.opacities_lr),
            "sh0": (self.sh0_lr_init, self.sh0_lr_final),
            "shN": (self.sh0_lr_init * self.shN_lr_ratio, self.sh0_lr_final * self.shN_lr_ratio),
        }

    def initial_lrs(self) -> dict[str, float]:
        """Learning rate per parameter name at step 0 (the `lrs` argument of `make_optimizers`)."""
        return {name: lr_range[0] for name, lr_range in self.lr_ranges().items()}


def make_optimizers(
    splats: torch.nn.ParameterDict, lrs: dict[str, float], eps: float = 1e-15
) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter (`{name: Adam}`), the layout gsplat's densification strategies expect.

    `lrs` maps every parameter name in `splats` to its learning rate; each optimizer has one param group
    whose "name" is the parameter's name. On CUDA the fused Adam kernel steps each parameter in one launch.
    """
    missing = sorted(set(splats.keys()) - set(lrs))
    if missing:
        raise ValueError(f"make_optimizers: no learning rate for {missing}")
    return {
        name: torch.optim.Adam([{"params": [param], "lr": lrs[name], "name": name}], eps=eps, fused=param.is_cuda)
        for name, param in splats.items()
    }


def lr_at(step: int, lr_init: float, lr_final: float, max_steps: int) -> float:
    """Log-linear interpolation from `lr_init` (step 0) to `lr_final` (step >= max_steps), like 3DGS's
    `get_expon_lr_func` without the delay: lr_init^(1-t) * lr_final^t with t = clamp(step / max_steps, 0, 1)."""
    if lr_init == lr_final:
        return lr_init
    if lr_init <= 0 or lr_final <= 0:
        raise ValueError(f"log-linear decay needs positive learning rates, got {lr_init} -> {lr_final}")
    t = min(max(step / max(max_steps, 1), 0.0), 1.0)
    return math.exp((1.0 - t) * math.log(lr_init) + t * math.log(lr_final))


def apply_lrs(
    optimizers: dict[str, torch.optim.Optimizer], step: int, cfg: OptimConfig, max_steps: int
) -> dict[str, float]:
    """Set each optimizer's learning rate to its schedule's value at `step` of `max_steps`; return them."""
    lrs = {}
    for name, (lr_init, lr_final) in cfg.lr_ranges().items():
        if name in optimizers:
            lrs[name] = lr_at(step, lr_init, lr_final, max_steps)
            for group in optimizers[name].param_groups:
                group["lr"] = lrs[name]
    return lrs


# ----------------------------------------------------------------------------------------------------------------
# PLY files: header parsing and vertex tables
# ----------------------------------------------------------------------------------------------------------------


class PlyError(UserError):
    """A `.ply` file that cannot be read; the message names the file and the problem."""


# PLY scalar type names (both spellings) -> numpy type codes without byte order.
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_BYTE_ORDER = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "="}
_MAX_HEADER_BYTES = 1 << 20


@dataclass
class PlyElement:
    """One `element` of a PLY header: its name, count and properties (name -> numpy type code, or "list")."""

    name: str
    count: int
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def has_lists(self) -> bool:
        return "list" in self.properties.values()


@dataclass
class PlyHeader:
    """A parsed PLY header. `data_offset` is where the body starts (bytes from the start of the file)."""

    format: str
    elements: list[PlyElement]
    data_offset: int
    comments: list[str]


def read_ply_header(path: str | os.PathLike) -> PlyHeader:
    """Parse and check the header of the PLY file at `path`. Raises PlyError naming the file and problem."""
    path = Path(path)
    if not path.is_file():
        raise PlyError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER_BYTES)
    if not head.startswith(b"ply\n") and not head.startswith(b"ply\r\n"):
        raise PlyError(f"{path}: not a PLY file (it must start with the line 'ply')")
    match = re.search(rb"(?:^|\n)end_header[ \t]*\r?\n", head)
    if match is None:
        raise PlyError(f"{path}: PLY header has no 'end_header' line within the first {_MAX_HEADER_BYTES} bytes")
    lines = head[: match.start()].decode("utf-8", errors="replace").splitlines()[1:]

    fmt, elements, comments = None, [], []
    for number, line in enumerate(lines, start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            comments.append(line[len(words[0]) :].strip() if words else "")
            continue
        if words[0] == "format" and len(words) == 3:
            if words[1] not in _BYTE_ORDER:
                raise PlyError(f"{path}: unknown PLY format '{words[1]}' (expected one of {', '.join(_BYTE_ORDER)})")
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(PlyElement(words[1], int(words[2])))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in _PLY_TYPES:
            elements[-1].properties[words[2]] = _PLY_TYPES[words[1]]
        elif words[0] == "property" and elements and len(words) == 5 and words[1] == "list":
            elements[-1].properties[words[4]] = "list"
        else:
            raise PlyError(f"{path}: cannot parse PLY header line {number}: {line!r}")
    if fmt is None:
        raise PlyError(f"{path}: PLY header has no 'format' line")
    return PlyHeader(fmt, elements, match.end(), comments)


def read_vertices(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The `vertex` element of any PLY file as `{property name: [N] array}` in file order (native dtypes).

    Reads binary (little- or big-endian) and ASCII files. Checks that the element exists, has only scalar
    properties, and that the file holds all N vertices.
    """
    path = Path(path)
    header = read_ply_header(path)
    names = [e.name for e in header.elements]
    if "vertex" not in names:
        raise PlyError(f"{path}: PLY file has no 'vertex' element (elements: {', '.join(names) or 'none'})")
    index = names.index("vertex")
    vertex = header.elements[index]
    if vertex.has_lists:
        raise PlyError(f"{path}: the 'vertex' element has list properties, which are not supported")
    order = _BYTE_ORDER[header.format]
    dtype = np.dtype([(name, order + code) for name, code in vertex.properties.items()])
    if header.format == "ascii":
        return _read_ascii_vertices(path, header, index, dtype)

    offset = header.data_offset
    for before in header.elements[:index]:
        if before.has_lists:
            raise PlyError(
                f"{path}: element '{before.name}' (with list properties) comes before 'vertex'; not supported"
            )
        offset += before.count * np.dtype([(n, order + c) for n, c in before.properties.items()]).itemsize
    expected = vertex.count * dtype.itemsize
    found = max(0, path.stat().st_size - offset)
    if found < expected:
        raise PlyError(f"{path}: truncated: expected {expected} bytes of vertex data, found {found}")
    table = np.fromfile(path, dtype=dtype, count=vertex.count, offset=offset)  # [N] structured
    return {name: table[name] for name in dtype.names}


def _read_ascii_vertices(path: Path, header: PlyHeader, index: int, dtype: np.dtype) -> dict[str, np.ndarray]:
    """ASCII body: one line per element instance, elements in header order."""
    skip = sum(e.count for e in header.elements[:index])  # lines of the elements before 'vertex'
    count = header.elements[index].count
    with open(path, "rb") as f:
        f.seek(header.data_offset)
        lines = f.read().decode("ascii", errors="replace").splitlines()[skip : skip + count]
    if len(lines) < count:
        raise PlyError(f"{path}: truncated: expected {count} vertex lines, found {len(lines)}")
    try:
        values = np.array([line.split() for line in lines], dtype=np.float64).reshape(count, len(dtype.names))
    except ValueError:
        raise PlyError(f"{path}: vertex lines do not hold {len(dtype.names)} numbers each") from None
    return {name: values[:, i].astype(dtype[name].newbyteorder("=")) for i, name in enumerate(dtype.names)}


def _float_columns(path: Path, vertices: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """Stack the named columns as float32 `[N, len(names)]`; float and double only, NaN/inf rejected."""
    for name in names:
        if vertices[name].dtype.kind != "f":
            raise PlyError(f"{path}: property '{name}' is stored as {vertices[name].dtype}; expected float or double")
    columns = np.stack([vertices[name].astype(np.float32) for name in names], axis=1)  # [N, P]
    bad_rows = ~np.isfinite(columns).all(axis=1)  # [N]
    if bad_rows.any():
        first = int(np.argmax(bad_rows))
        bad_names = [n for n, ok in zip(names, np.isfinite(columns[first])) if not ok]
        raise PlyError(
            f"{path}: {int(bad_rows.sum())} of {len(bad_rows)} Gaussians have NaN or infinite values "
            f"(first: vertex {first}, property {', '.join(bad_names)})"
        )
    return columns


# ----------------------------------------------------------------------------------------------------------------
# PLY files: 3D Gaussian scenes
# ----------------------------------------------------------------------------------------------------------------

_F_REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}  # number of f_rest properties -> SH degree


@dataclass
class PlyScene:
    """A 3D Gaussian scene read from a `.ply` file."""

    path: Path
    """The file it came from."""
    splats: torch.nn.ParameterDict
    """Raw parameters (gsplat layout, CPU, float32)."""
    sh_degree: int
    """SH degree 0-3, from the number of f_rest properties."""
    has_normals: bool
    """Whether the file had nx, ny, nz (3DGS writes zeros there; they are kept, not used)."""
    normals: torch.Tensor | None = None
    """`[N, 3]` normals as stored, or None."""
    ignored_properties: list[str] = field(default_factory=list)
    """Vertex properties the file had that are not Gaussian parameters (kept out of `splats`)."""

    @property
    def num_gaussians(self) -> int:
        return self.splats["means"].shape[0]


def gaussian_property_names(sh_degree: int, with_normals: bool) -> list[str]:
    """Vertex property names of the INRIA layout, in file order."""
    names = ["x", "y", "z"]
    if with_normals:
        names += ["nx", "ny", "nz"]
    names += [f"f_dc_{i}" for i in range(3)]
    names += [f"f_rest_{i}" for i in range(3 * (num_sh_bases(sh_degree) - 1))]
    names += ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    return names


def read_ply(path: str | os.PathLike) -> PlyScene:
    """Read a 3D Gaussian splat `.ply` (INRIA 3DGS layout, as written by 3DGS, gsplat, LucidDreamer, ...).

    Accepts SH degree 0-3, with or without normals, any property order, extra properties (ignored), double
    values (converted to float32), binary or ASCII. Raises PlyError naming the file and the problem: not a PLY,
    no vertex element, missing properties, an f_rest count that is not 0/9/24/45, truncated data, NaN/inf values.
    """
    path = Path(path)
    vertices = read_vertices(path)

    required = gaussian_property_names(0, with_normals=False)
    missing = [name for name in required if name not in vertices]
    if missing:
        hint = " (a plain point cloud? use it as an init with shape 'points')" if "x" in vertices else ""
        raise PlyError(
            f"{path}: not a 3D Gaussian splat file: missing vertex properties {', '.join(missing)}{hint}"
        )
    n_rest = sum(1 for name in vertices if re.fullmatch(r"f_rest_\d+", name))
    if n_rest not in _F_REST_COUNTS:
        raise PlyError(
            f"{path}: has {n_rest} f_rest properties; expected 0, 9, 24 or 45 (SH degree 0, 1, 2 or 3)"
        )
    sh_degree = _F_REST_COUNTS[n_rest]
    has_normals = all(name in vertices for name in ("nx", "ny", "nz"))
    names = gaussian_property_names(sh_degree, with_normals=has_normals)
    missing = [name for name in names if name not in vertices]  # e.g. f_rest numbering with a gap
    if missing:
        raise PlyError(f"{path}: missing vertex properties {', '.join(missing)}")
    values = torch.from_numpy(_float_columns(path, vertices, names))  # [N, P]

    col = {name: i for i, name in enumerate(names)}
    n, k = values.shape[0], num_sh_bases(sh_degree)

    def take(*cols: str) -> torch.Tensor:
        return values[:, [col[c] for c in cols]].contiguous()

    f_rest = take(*[f"f_rest_{i}" for i in range(3 * (k - 1))])  # [N, 3*(K-1)] channel-major
    params = {
        "means": take("x", "y", "z"),  # [N, 3]
        "scales": take("scale_0", "scale_1", "scale_2"),  # [N, 3]
        "quats": take("rot_0", "rot_1", "rot_2", "rot_3"),  # [N, 4]
        "opacities": take("opacity")[:, 0].contiguous(),  # [N]
        "sh0": take("f_dc_0", "f_dc_1", "f_dc_2").reshape(n, 1, 3),  # [N, 1, 3]
        "shN": f_rest.reshape(n, 3, k - 1).transpose(1, 2).contiguous(),  # [N, K-1, 3]
    }
    return PlyScene(
        path=path,
        splats=torch.nn.ParameterDict({name: torch.nn.Parameter(t) for name, t in params.items()}),
        sh_degree=sh_degree,
        has_normals=has_normals,
        normals=take("nx", "ny", "nz") if has_normals else None,
        ignored_properties=[name for name in vertices if name not in col],
    )


def write_vertices(
    path: str | os.PathLike, vertices: dict[str, np.ndarray], format: str = "binary_little_endian"
) -> Path:
    """Write a PLY file with one `vertex` element, atomically; return the path.

    `vertices` maps property names (in file order) to `[N]` arrays; each array's dtype gives the property's
    PLY type (float32 -> float, float64 -> double, uint8 -> uchar, ...). `format` is "binary_little_endian",
    "binary_big_endian" or "ascii". Used by `write_ply`, and for plain point clouds.
    """
    if format not in _BYTE_ORDER:
        raise ValueError(f"format must be one of {', '.join(_BYTE_ORDER)}, got {format!r}")
    names = list(vertices)
    n = len(vertices[names[0]]) if names else 0
    ply_names = {code: name for name, code in reversed(_PLY_TYPES.items())}  # "f4" -> "float", ...
    order = _BYTE_ORDER[format]
    dtype = np.dtype([(name, order + np.asarray(vertices[name]).dtype.str[1:]) for name in names])
    lines = ["ply", f"format {format} 1.0", f"element vertex {n}"]
    lines += [f"property {ply_names[dtype[name].str[1:]]} {name}" for name in names]
    header = "\n".join(lines + ["end_header"]) + "\n"

    table = np.empty(n, dtype=dtype)  # [N] structured, one row per vertex
    for name in names:
        table[name] = vertices[name]
    if format == "ascii":
        digits = {"f4": "%.9g", "f8": "%.17g"}  # enough to read back the very same float
        row_format = " ".join(digits.get(dtype[name].str[1:], "%d") for name in names) + "\n"
        body = "".join(row_format % tuple(row) for row in table).encode("ascii")
    else:
        body = table.tobytes()
    with atomic_write(path) as f:
        f.write(header.encode("ascii"))
        f.write(body)
    return Path(path)


def ply_header_text(num_gaussians: int, sh_degree: int, with_normals: bool = True) -> str:
    """The exact header `write_ply` writes (the INRIA 3DGS layout, no comments)."""
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {num_gaussians}"]
    lines += [f"property float {name}" for name in gaussian_property_names(sh_degree, with_normals)]
    return "\n".join(lines + ["end_header"]) + "\n"


def write_ply(
    path: str | os.PathLike,
    splats: torch.nn.ParameterDict | dict,
    normals: torch.Tensor | None = None,
    with_normals: bool = True,
) -> Path:
    """Write raw Gaussian parameters as an INRIA-layout binary `.ply` (header: `ply_header_text`), atomically.

    Args:
        splats: gsplat-layout parameters (any device; values are written as float32).
        normals: `[N, 3]` values for nx, ny, nz; None writes zeros (as 3DGS does).
        with_normals: write the nx, ny, nz properties at all (3DGS's own viewer expects them; most viewers
            and gsplat's exporter do without).

    Returns the path. Raises ValueError if any value is NaN or infinite: such a file would not load anywhere.
    """
    n = splats["means"].shape[0]
    sh_degree = sh_degree_of(splats)
    k = num_sh_bases(sh_degree)

    def host(t: torch.Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy()

    shN = host(splats["shN"]).reshape(n, k - 1, 3).transpose(0, 2, 1).reshape(n, 3 * (k - 1))  # channel-major
    columns = [host(splats["means"])]  # [N, 3]
    if with_normals:
        columns.append(np.zeros((n, 3), np.float32) if normals is None else host(normals).reshape(n, 3))
    columns += [
        host(splats["sh0"]).reshape(n, 3),  # [N, 3]
        shN,  # [N, 3*(K-1)]
        host(splats["opacities"]).reshape(n, 1),  # [N, 1]
        host(splats["scales"]).reshape(n, 3),  # [N, 3]
        host(splats["quats"]).reshape(n, 4),  # [N, 4]
    ]
    values = np.concatenate(columns, axis=1)  # [N, P]
    bad = int((~np.isfinite(values).all(axis=1)).sum())
    if bad:
        raise ValueError(f"write_ply({path}): {bad} of {n} Gaussians have NaN or infinite parameters")
    names = gaussian_property_names(sh_degree, with_normals)
    return write_vertices(path, {name: values[:, i] for i, name in enumerate(names)})
