import os
from contextlib import contextmanager

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run the slow tier too")


def pytest_collection_modifyitems(config, items):
    import torch

    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    skip_slow = pytest.mark.skip(reason="slow tier: pass --runslow")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def tiny_prior_dir(tmp_path_factory):
    """A tiny random SD-format pipeline folder (32² images, ×4 VAE, 8² latents), built in-process."""
    from lucidkit.testing import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("prior") / "tiny", image_size=32, vae_scale_factor=4)


def one_line_error(result, *words):
    """A CLI result that failed the way bad input must: exit 2, exactly one `Error:` line naming `words`, no
    traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in lines[0], (w, lines[0])


@contextmanager
def interrupted_at(step: int):
    """Ctrl-C right after update `step`, raised from the progress callback that every run command uses."""
    import lucidkit.runs as runs

    original = runs.Progress.__call__

    def interrupt(self, state, logs):
        original(self, state, logs)
        if state.step == step:
            raise KeyboardInterrupt

    runs.Progress.__call__ = interrupt
    try:
        yield
    finally:
        runs.Progress.__call__ = original
