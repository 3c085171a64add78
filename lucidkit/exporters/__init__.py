"""`lucidkit export`: a Gaussian scene (`.ply`, INRIA layout) in the formats people use.

| format           | file                   | for                                                        |
|------------------|------------------------|------------------------------------------------------------|
| `splat`          | `<stem>.splat`         | antimatter15's WebGL viewer and the web viewers that read it |
| `ply-compressed` | `<stem>.compressed.ply`| PlayCanvas / SuperSplat                                    |
| `glb`            | `<stem>.glb`           | a mesh with vertex colours (game engines, Blender, the web) |
| `obj`            | `<stem>.obj`           | the same mesh as Wavefront OBJ (vertex colours as `v x y z r g b`) |
| `mesh-ply`       | `<stem>.mesh.ply`      | the same mesh as a PLY with faces (3D printing, MeshLab)   |

Frames: the splat formats are written in the frame that 3DGS captures use and the web viewers expect (-y up,
COLMAP/OpenCV: SuperSplat turns every file 180 degrees about z, antimatter15's cameras look that way); `.glb` is
y-up as glTF requires; OBJ and mesh PLY keep the input's own frame. Units are never changed. `up` names the
input's up axis (like `lucidkit edit --up`; ours are z-up).

The input is only read. Every output is written atomically; a bad input or option fails before anything is written.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lucidkit.errors import UserError

# format name -> (file suffix, what it is for)
FORMATS = {
    "splat": (".splat", "antimatter15 .splat (WebGL splat viewers)"),
    "ply-compressed": (".compressed.ply", "PlayCanvas / SuperSplat compressed .ply"),
    "glb": (".glb", "mesh with vertex colours, glTF binary (y-up)"),
    "obj": (".obj", "mesh with vertex colours, Wavefront OBJ"),
    "mesh-ply": (".mesh.ply", "mesh with vertex colours, PLY"),
}
SPLAT_FORMATS = ("splat", "ply-compressed")
MESH_FORMATS = ("glb", "obj", "mesh-ply")
UP_AXES = ("z", "-z", "y", "-y", "x", "-x")


@dataclass
class Exported:
    """One written file."""

    format: str
    path: Path
    bytes: int
    seconds: float


def parse_formats(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """'splat,glb' / ['splat', 'glb'] / 'all' -> format names in table order; UserError for unknown names."""
    words = text.split(",") if isinstance(text, str) else [w for t in text for w in t.split(",")]
    words = [w.strip().lower() for w in words if w.strip()]
    if not words:
        raise UserError(f"no export format given; expected one or more of {', '.join(FORMATS)} or 'all'")
    if "all" in words:
        return list(FORMATS)
    unknown = [w for w in words if w not in FORMATS]
    if unknown:
        raise UserError(f"unknown export format {unknown[0]!r}; expected one of {', '.join(FORMATS)} or 'all'")
    return [name for name in FORMATS if name in words]


def check_formats(text: str | list[str]) -> list[str]:
    """`parse_formats`, and for mesh formats a check that the `export` extra is installed (before a long run)."""
    names = parse_formats(text)
    if any(name in MESH_FORMATS for name in names):
        _require_mesh_libraries()
    return names


def resolve_input(path: str | os.PathLike) -> Path:
    """A `.ply` file, or a run folder (-> its scene.ply)."""
    path = Path(path)
    if path.is_dir():
        scene = path / "scene.ply"
        if not scene.is_file():
            raise UserError(f"{path} is a folder without a scene.ply; pass the .ply file or a lucidkit run folder")
        return scene
    if not path.exists():
        raise UserError(f"{path}: no such file")
    return path


def output_paths(ply: Path, formats: list[str], out: str | os.PathLike | None) -> dict[str, Path]:
    """Where each format goes. One format with `out` naming a file: that file (its suffix must fit the format).
    Otherwise `out` (default: the input's folder) is a folder and the files are `<input stem><suffix>`."""
    stem = ply.name[: -len(".ply")] if ply.name.lower().endswith(".ply") else ply.stem
    out_path = Path(out) if out is not None else None
    if out_path is not None and len(formats) == 1 and out_path.suffix and not out_path.is_dir():
        name = formats[0]
        wanted = ".ply" if name in ("ply-compressed", "mesh-ply") else FORMATS[name][0]
        if not out_path.name.lower().endswith(wanted):
            raise UserError(f"--out {out_path}: a {name} file must end in {wanted}")
        return {name: out_path}
    if out_path is not None and len(formats) > 1 and out_path.suffix.lower() in (".splat", ".ply", ".glb", ".obj"):
        raise UserError(f"--out {out_path} names a file, but {len(formats)} formats were asked for; pass a folder")
    folder = out_path if out_path is not None else ply.parent
    return {name: folder / f"{stem}{FORMATS[name][0]}" for name in formats}


def export_scene(
    ply_path: str | os.PathLike,
    formats: str | list[str],
    out: str | os.PathLike | None = None,
    faces: int = 50_000,
    up: str = "z",
    resolution: int = 192,
    announce: Callable[[str], None] | None = None,
) -> list[Exported]:
    """Export the Gaussian scene `ply_path` (a `.ply` or a run folder) to `formats` (see `FORMATS`).

    Args:
        out: a file (one format) or a folder; default: next to the input.
        faces: target face count of the mesh formats (after decimation).
        up: the input's up axis (z, -z, y, -y, x, -x).
        resolution: voxels along the longest side of the mesh's density grid.
    Returns one `Exported` per written file. Raises UserError for bad input, before anything is written.
    """
    from lucidkit.export import check_writable_dir
    from lucidkit.splat.ply import read_ply

    names = check_formats(formats)
    if up not in UP_AXES:
        raise UserError(f"--up {up!r}: expected one of {', '.join(UP_AXES)}")
    if faces < 4:
        raise UserError(f"--faces {faces}: a mesh needs at least 4 faces")
    ply = resolve_input(ply_path)
    paths = output_paths(ply, names, out)
    for path in paths.values():
        if path.resolve() == ply.resolve():
            raise UserError(f"--out {path} is the input file; choose another name (the input is only read)")
    scene = read_ply(ply)  # PlyError (a UserError) for anything that is not a Gaussian .ply
    if scene.num_gaussians == 0:
        raise UserError(f"{ply}: the scene has no Gaussians")
    for folder in {p.parent for p in paths.values()}:
        check_writable_dir(folder)

    say = announce or (lambda message: None)
    results: list[Exported] = []
    mesh = None
    for name in names:
        start = time.perf_counter()
        if name in SPLAT_FORMATS:
            from lucidkit.exporters.splat_formats import write_splat_format

            write_splat_format(scene.splats, name, paths[name], up)
        else:
            from lucidkit.exporters.mesh import extract_mesh, write_mesh

            if mesh is None:  # one surface serves every mesh format
                try:
                    mesh = extract_mesh(scene.splats, faces=faces, resolution=resolution)
                except ValueError as e:  # e.g. every Gaussian transparent
                    raise UserError(f"{ply}: cannot make a mesh: {e}") from None
            write_mesh(mesh, paths[name], name, up)
        seconds = time.perf_counter() - start
        result = Exported(name, paths[name], paths[name].stat().st_size, seconds)
        results.append(result)
        say(f"Wrote {result.path} ({name}, {result.bytes / 1e6:.2f} MB, {seconds:.1f} s)")
    return results


def _require_mesh_libraries() -> None:
    """The mesh formats need the `export` extra; say so in one line when it is missing."""
    missing = []
    for module, package in (("trimesh", "trimesh"), ("skimage", "scikit-image"), ("scipy", "scipy")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise UserError(f"mesh export needs {', '.join(missing)}: pip install \"lucidkit[export]\"")
