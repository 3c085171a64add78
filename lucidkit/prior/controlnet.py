"""Loading a ControlNet (diffusers `ControlNetModel`) from a short name, a folder, a hub id or "random"."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lucidkit.models import get_model, model_names, toy_controlnet_dir
from lucidkit.prior.files import _PICKLE_SUFFIXES, ModelLoadError, _weight_files, check_safetensors_file
from lucidkit.prior.hub import _HUB_CONTROLNET_FILES, _HUB_ID, _hub_folder

_ADVICE_CONTROLNET = "pass a local diffusers ControlNet folder (config.json + diffusion_pytorch_model.safetensors)"


def _load_controlnet(spec: str, device: torch.device):
    """Load a ControlNetModel (float32, CPU) from a short name, folder, hub id or "random"."""
    from diffusers import ControlNetModel

    from lucidkit.arch import arch_file

    if spec == "random":
        cfg = json.loads(arch_file("sd15", "controlnet_openpose").read_text())
        with torch.device(device):
            return ControlNetModel.from_config(cfg), {"spec": spec, "kind": "random", "arch": "sd15"}
    entry = get_model(spec)
    path = Path(spec).expanduser()
    if entry is not None and entry.kind == "controlnet" and entry.repo_id is None:  # shipped with lucidkit
        folder = toy_controlnet_dir(check=True)
        source = {"spec": spec, "kind": "toy", "path": str(folder)}
    elif entry is not None:
        if entry.kind != "controlnet":
            raise ModelLoadError(
                f"'{spec}' is a {entry.kind}, not a ControlNet (known: {', '.join(model_names('controlnet'))})"
            )
        folder = _hub_folder(
            entry.repo_id,
            entry.revision,
            _HUB_CONTROLNET_FILES,
            entry.fallback_repo_ids,
            label=f"ControlNet '{spec}' (hub {entry.repo_id})",
            advice=_ADVICE_CONTROLNET,
        )
        source = {"spec": spec, "kind": "hub", "repo_id": entry.repo_id, "revision": entry.revision}
    elif path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"ControlNet {path} is a pickle ({path.suffix}); pass a .safetensors file or a diffusers folder"
        )
    elif path.is_file():
        raise ModelLoadError(f"ControlNet {path} is a single file; {_ADVICE_CONTROLNET}")
    elif path.exists() or not _HUB_ID.match(spec):
        folder = path
        source = {"spec": spec, "kind": "folder", "path": str(path)}
    else:
        repo_id, _, revision = spec.partition("@")
        folder = _hub_folder(
            repo_id,
            revision or None,
            _HUB_CONTROLNET_FILES,
            label=f"ControlNet '{spec}' (no such local folder; tried as a hub id)",
            advice=_ADVICE_CONTROLNET,
        )
        source = {"spec": spec, "kind": "hub", "repo_id": repo_id, "revision": revision or None}
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"ControlNet folder {folder} has no config.json (expected a diffusers ControlNet folder)")
    files, variant = _weight_files(folder, "diffusion_pytorch_model")
    if not files:
        raise ModelLoadError(
            f"ControlNet folder {folder} has no weights (expected diffusion_pytorch_model.safetensors)"
        )
    for file in files:
        if file.suffix == ".safetensors":
            check_safetensors_file(file)
    try:
        model = ControlNetModel.from_pretrained(str(folder), variant=variant, local_files_only=True)
    except Exception as err:  # noqa: BLE001
        raise ModelLoadError(f"cannot load ControlNet from {folder} ({type(err).__name__}: {err})") from err
    return model, source


# words that name the other kinds of ControlNet in their folder and hub names (lllyasviel's and most others')
_OTHER_CONTROLS = ("canny", "depth", "normal", "seg", "lineart", "scribble", "softedge", "mlsd", "tile", "inpaint",
                   "ip2p", "shuffle", "hed", "qrcode", "brightness")


def check_openpose(controlnet, spec: str) -> None:
    """Refuse a ControlNet that is, as far as its name and config tell, not an OpenPose one: one that takes other
    than 3-channel condition images, or whose folder or hub name says it is a canny, depth, … ControlNet."""
    channels = int(getattr(controlnet.config, "conditioning_channels", 3))
    names = f"{spec} {getattr(controlnet.config, '_name_or_path', '')}".lower()
    other = next((w for w in _OTHER_CONTROLS if w in names.replace("openpose", "")), None)
    if channels != 3 or (other and "pose" not in names):
        why = f"it takes {channels}-channel conditions" if channels != 3 else f"its name says it is a {other} one"
        raise ModelLoadError(f"ControlNet {spec} is not an OpenPose ControlNet ({why}); avatar draws OpenPose "
                             "skeletons: pass an OpenPose ControlNet (e.g. control_v11p_sd15_openpose)")
