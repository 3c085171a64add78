"""controlnet_aux's OpenPose drawing code (the reference our skeleton drawing is compared with), for the tests:
imported normally, or else its drawing file loaded on its own (the package imports every detector, which needs
torchvision; the drawing needs only cv2 and numpy, and matplotlib for hands). Skips the test without it."""

import importlib.util
import sys
import types
from pathlib import Path
from typing import NamedTuple

import pytest


class Keypoint(NamedTuple):
    x: float
    y: float
    score: float = 1.0
    id: int = -1


def reference_util(monkeypatch):
    """(controlnet_aux.open_pose.util or its file loaded alone, its Keypoint type); skips when neither loads."""
    try:
        from controlnet_aux.open_pose import util
        from controlnet_aux.open_pose.body import Keypoint as keypoint_type

        return util, keypoint_type
    except Exception:  # noqa: BLE001
        pass
    pytest.importorskip("cv2")
    spec = importlib.util.find_spec("controlnet_aux")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("controlnet_aux is not installed")
    util = Path(list(spec.submodule_search_locations)[0]) / "open_pose" / "util.py"
    package, body = types.ModuleType("_cnaux_pose"), types.ModuleType("_cnaux_pose.body")
    package.__path__ = [str(util.parent)]
    body.Keypoint, body.BodyResult = Keypoint, tuple
    monkeypatch.setitem(sys.modules, "_cnaux_pose", package)
    monkeypatch.setitem(sys.modules, "_cnaux_pose.body", body)
    module_spec = importlib.util.spec_from_file_location("_cnaux_pose.util", util)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"controlnet_aux's drawing code does not load here ({err})")
    module.Keypoint = Keypoint
    return module, Keypoint
