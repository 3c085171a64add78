"""torch.compile's cache folder, packed for another machine of the same kind (`lucidkit cache export|import`).

A compiled prior (`prior.compile: full` or `regional`) keeps what it compiled — inductor's FX graphs and autograd
graphs, the Triton kernels and their autotuning results — in one folder, ~/.cache/lucidkit/inductor (or the
TORCHINDUCTOR_CACHE_DIR a user set). A later run on a machine with the same GPU, torch and Triton reads its
compiled code from there instead of compiling again. An archive of that folder hands the cache to a fresh machine
(a cluster node, a new container):

    export: FILE (tar.gz) = lucidkit-compile-cache.json (what made it) + inductor/<every cache file>
    import: check FILE, unpack it into a temporary folder beside the cache, then move each file into place
            (a rename: a run reading the cache never sees a half-written file; an archive that turns out to be
            damaged half-way changes nothing)

The folder already holds every artefact the compiler reads back, so nothing else (torch's
`save_cache_artifacts`) is packed: the folder's files are what a run with the same folder would read anyway.
This module imports no torch.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import tarfile
import tempfile
import time
import zlib
from importlib import metadata
from pathlib import Path

from lucidkit.errors import UserError

MARKER = "lucidkit-compile-cache.json"  # the archive's first member: what made it
ROOT = "inductor"  # every cache file sits under this folder in the archive
SKIPPED_SUFFIXES = (".lock", ".tmp")  # inductor's file locks and files being written


def default_folder() -> Path:
    """$XDG_CACHE_HOME (or ~/.cache)/lucidkit/inductor: where the fast path (`use_persistent_compile_cache`) has
    torch.compile keep its cache unless the user chose a TORCHINDUCTOR_CACHE_DIR."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lucidkit" / "inductor"


def cache_folder() -> Path:
    """The compile cache of this user: TORCHINDUCTOR_CACHE_DIR if set, else `default_folder()`."""
    return Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or default_folder())


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _origin() -> dict:
    """What a compile cache depends on besides the GPU (a different torch or Triton does not read it)."""
    return {"torch": _version("torch"), "triton": _version("triton"), "python": platform.python_version(),
            "machine": platform.machine()}


def _cache_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                  and not p.name.endswith(SKIPPED_SUFFIXES))


def export_cache(archive: str | os.PathLike, folder: Path | None = None) -> tuple[int, int]:
    """Write `folder` (default: `cache_folder()`) into the tar.gz `archive` (written atomically); returns
    (files, bytes before compression). A missing or empty folder is a UserError."""
    from lucidkit.export import atomic_path

    folder = Path(folder or cache_folder())
    files = _cache_files(folder) if folder.is_dir() else []
    if not files:
        raise UserError(f"no compile cache to export: {folder} holds no files (run a command with "
                        "prior.compile=full or regional on this machine first)")
    marker = json.dumps({"format": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": len(files),
                         **_origin()}, indent=1).encode()
    size = 0
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        info = tarfile.TarInfo(MARKER)
        info.size, info.mtime = len(marker), int(time.time())
        tar.addfile(info, io.BytesIO(marker))
        for path in files:
            try:
                tar.add(path, arcname=f"{ROOT}/{path.relative_to(folder).as_posix()}", recursive=False)
                size += path.stat().st_size
            except FileNotFoundError:  # removed by a run that is compiling right now
                continue
    return len(files), size


def read_marker(archive: Path) -> dict:
    """The archive's marker (what made it), or a UserError saying the file is not a compile-cache archive."""
    not_ours = f"{archive} is not a lucidkit compile-cache archive (made by `lucidkit cache export`)"
    if not archive.is_file():
        raise UserError(f"{archive} does not exist or is not a file")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            first = tar.next()
            if first is None or first.name != MARKER or not first.isfile():
                raise UserError(not_ours)
            marker = json.loads(tar.extractfile(first).read())
    except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as e:
        raise UserError(f"{not_ours}: {e}") from None
    if not isinstance(marker, dict) or marker.get("format") != 1:
        raise UserError(not_ours)
    return marker


def import_cache(archive: str | os.PathLike, folder: Path | None = None) -> tuple[int, list[str]]:
    """Unpack `archive` (from `export_cache`) into `folder` (default: `cache_folder()`); files already there stay,
    and one of the same name is replaced (the cache names its files by content hashes). Returns (files imported,
    notes for the user)."""
    archive, folder = Path(archive), Path(folder or cache_folder())
    marker = read_marker(archive)
    notes = [f"made with {k} {marker.get(k)}, this machine has {v}: the compiler will not use its files"
             for k, v in _origin().items() if k in ("torch", "triton") and marker.get(k) != v]
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=folder.parent))  # same file system: renames
    try:
        names = _unpack(archive, staging)
        for name in names:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(names), notes


def _unpack(archive: Path, staging: Path) -> list[str]:
    """Every cache file of `archive` written under `staging`; names relative to the cache folder. Members that
    would land outside it (absolute paths, '..', links, devices) make the whole archive a UserError."""
    names = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name == MARKER or member.isdir():
                    continue
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 2 or parts[0] != ROOT or ".." in parts \
                        or os.path.isabs(member.name):
                    raise UserError(f"{archive}: unexpected member {member.name!r}; a compile-cache archive holds "
                                    f"only files under {ROOT}/ (made by `lucidkit cache export`)")
                name = Path(*parts[1:])
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                names.append(name.as_posix())
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"{archive} could not be unpacked ({e}); nothing in the cache changed") from None
    return names
