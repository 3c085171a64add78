"""Text-guided editing of an existing 3D Gaussian scene, the engine behind `lucidkit edit`: `config.py` (EditConfig),
`source.py` (the input scene, region and cameras), `objective.py` (guidance + anchor) and `run.py` (the edit's part of
the shared scene run)."""

from lucidkit.edit.config import EditConfig, resolve_config
from lucidkit.edit.run import run

__all__ = ["EditConfig", "resolve_config", "run"]
