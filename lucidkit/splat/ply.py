"""INRIA-layout 3D Gaussian `.ply` files: reading any such file (3DGS, gsplat, nerfstudio; SH degree 0-3, with or
without normals) with validated headers and sizes, and writing ours atomically.

The layout is the one the INRIA 3DGS code writes and splat viewers read: one binary little-endian `vertex` element of
float32 properties

    x y z [nx ny nz] f_dc_0..2 f_rest_0..3(K-1)-1 opacity scale_0..2 rot_0..3

with raw values (logit opacity, log scales, wxyz quaternions) and f_rest stored channel-major: all red
coefficients, then all green, then all blue.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lucidkit.errors import UserError
from lucidkit.export import atomic_write
from lucidkit.splat.scene import num_sh_bases, sh_degree_of

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical harmonic, 1 / (2 sqrt(pi)): rgb = 0.5 + SH_C0 * sh0."""


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
