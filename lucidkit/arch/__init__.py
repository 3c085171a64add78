"""Network shapes of public Stable Diffusion releases (config JSON only, no weights).

One folder per family (`sd21-base/`, `sd15/`, and `tiny/`: the test-sized shapes of `lucidkit.testing`), each with `unet.json`, `vae.json`, `text_encoder.json`,
`scheduler.json` (and `controlnet_openpose.json` for SD 1.5), written from the public releases' configs.
They serve two purposes:

- offline loading of single-file `.safetensors` checkpoints (the file has weights but no configs);
- random-weight models at true scale for speed and memory benchmarks — never for quality.

If a detail differs from a real download, trust the download.
"""

from pathlib import Path

ARCH_DIR = Path(__file__).parent


def arch_names() -> list[str]:
    """Names of the shipped architecture folders, e.g. ["sd15", "sd21-base"]."""
    return sorted(p.name for p in ARCH_DIR.iterdir() if p.is_dir() and (p / "unet.json").is_file())


def arch_file(arch: str, part: str) -> Path:
    """Path of one config, e.g. `arch_file("sd15", "unet")` -> .../sd15/unet.json. Raises KeyError if absent."""
    path = ARCH_DIR / arch / f"{part}.json"
    if not path.is_file():
        raise KeyError(f"no architecture config {arch}/{part}.json (known: {', '.join(arch_names())})")
    return path


def make_scheduler():
    """DDIM with Stable Diffusion's training schedule (what SD 1.x/2.x folders configure)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
