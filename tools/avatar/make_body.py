"""Write lucidkit's built-in procedural body in the SMPL-X file layout (see lucidkit/body/procedural.py).

    python -m tools.avatar.make_body                      # -> samples/body/smplx/SMPLX_NEUTRAL.npz
    python -m tools.avatar.make_body --out DIR/smplx/SMPLX_NEUTRAL.npz --seed 0

Deterministic: the same seed writes the same arrays. With smplx installed, the written file is loaded back through
`smplx.create(..., model_type="smplx", ext="npz")` and its vertex / joint counts are printed as a check.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lucidkit.body.procedural import write_body

DEFAULT = Path(__file__).resolve().parents[2] / "samples" / "body" / "smplx" / "SMPLX_NEUTRAL.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT, help="the .npz to write (folder layout DIR/smplx/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the expression directions")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = Path(write_body(args.out, seed=args.seed))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    try:
        import smplx
    except ImportError:
        print("smplx is not installed: skipped the load check (pip install 'lucidkit[avatar]')")
        return
    model = smplx.create(str(path.parent.parent), model_type="smplx", ext="npz", use_pca=False)
    out = model(return_verts=True)
    print(f"smplx loads it: {out.vertices.shape[1]} vertices, {model.faces.shape[0]} faces, "
          f"{out.joints.shape[1]} output joints")


if __name__ == "__main__":
    main()
