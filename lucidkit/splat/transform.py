"""Similarity transforms of Gaussian scenes between a file's frame and the engine's (z-up): rotations of means,
quaternions and higher spherical-harmonic coefficients, with the up axis of the file (`UP_ROTATIONS`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lucidkit.camera_files import robust_bounds
from lucidkit.errors import UserError
from lucidkit.splat.scene import sh_degree_of

# File axes → engine axes for each `--up`: rows are the engine's x, y, z axes in file coordinates (proper rotations).
UP_ROTATIONS = {
    "z": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "-z": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),
    "y": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),  # file +y → +z, file +z → -y (OpenGL / Blender-export style)
    "-y": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),  # file -y → +z, file +z → +y (COLMAP / OpenCV captures)
    "x": ((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    "-x": ((0, 0, 1), (0, 1, 0), (-1, 0, 0)),
}


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a ⊗ b of wxyz quaternions [..., 4] (rotation b, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def rotation_to_quat(rotation: Tensor) -> Tensor:
    """Unit wxyz quaternion [4] of a proper rotation matrix [3, 3] (Shepperd's method: stable for any angle)."""
    m = rotation.to(torch.float64)
    trace = m.trace()
    candidates = torch.stack([trace, m[0, 0], m[1, 1], m[2, 2]])
    i = int(candidates.argmax())
    if i == 0:
        w = torch.sqrt(1 + trace) / 2
        q = [w, (m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w)]
    elif i == 1:
        x = torch.sqrt(1 + m[0, 0] - m[1, 1] - m[2, 2]) / 2
        q = [(m[2, 1] - m[1, 2]) / (4 * x), x, (m[0, 1] + m[1, 0]) / (4 * x), (m[0, 2] + m[2, 0]) / (4 * x)]
    elif i == 2:
        y = torch.sqrt(1 - m[0, 0] + m[1, 1] - m[2, 2]) / 2
        q = [(m[0, 2] - m[2, 0]) / (4 * y), (m[0, 1] + m[1, 0]) / (4 * y), y, (m[1, 2] + m[2, 1]) / (4 * y)]
    else:
        z = torch.sqrt(1 - m[0, 0] - m[1, 1] + m[2, 2]) / 2
        q = [(m[1, 0] - m[0, 1]) / (4 * z), (m[0, 2] + m[2, 0]) / (4 * z), (m[1, 2] + m[2, 1]) / (4 * z), z]
    return torch.stack(q)


def sh_rotation(rotation: Tensor, degree: int) -> Tensor:
    """[K-1, K-1] float64 map of the higher SH coefficients (degrees 1..degree, K = (degree+1)^2) under a rotation
    of the world: coefficients c describe colour(d); `sh_rotation(R) @ c` describes colour(R^T d), the same colour
    seen in the rotated frame. Solved by least squares on the renderer's own SH basis (exact up to rounding)."""
    from gsplat.cuda._torch_impl import _eval_sh_bases_fast  # the basis the renderer evaluates

    k = (degree + 1) ** 2
    if degree == 0:
        return torch.zeros(0, 0, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(256, 3, generator=g, dtype=torch.float64), dim=-1)  # [M, 3]
    basis = _eval_sh_bases_fast(k, dirs)  # [M, K]: Y_j(d)
    rotated = _eval_sh_bases_fast(k, dirs @ rotation.to(torch.float64))  # [M, K]: Y_k(R^T d)
    solution = torch.linalg.lstsq(basis, rotated).solution  # [K, K]: basis @ M = rotated
    solution[solution.abs() < 1e-12] = 0.0
    return solution[1:, 1:]  # degree 0 is invariant


@dataclass
class SceneFrame:
    """The similarity from the file's frame to the engine's: x_engine = scale * (rotation @ x_file - center)."""

    up: str
    rotation: Tensor  # [3, 3] float64, a proper rotation (signed permutation)
    center: Tensor  # [3] float64: the robust centre, in the rotated (z-up) file units
    scale: float  # engine units per file unit

    @classmethod
    def fit(cls, splats: dict, up: str, fit_radius: float, percentile: float) -> "SceneFrame":
        """Rotate `up` to +z, then centre and scale the robust bounds of the Gaussians `splats` (raw parameters in
        the file's frame) to a ball of `fit_radius`."""
        if up not in UP_ROTATIONS:
            raise UserError(f"--up {up!r}: expected one of {', '.join(UP_ROTATIONS)}")
        rotation = torch.tensor(UP_ROTATIONS[up], dtype=torch.float64)
        means = splats["means"].detach().to(torch.float64) @ rotation.T  # [N, 3]
        center, radius = robust_bounds(means, torch.sigmoid(splats["opacities"].detach()), percentile)
        return cls(up, rotation, center, fit_radius / radius)

    def to_engine(self, params: dict) -> dict[str, Tensor]:
        """Raw Gaussian parameters (gsplat layout) from the file's frame to the engine's (new float32 tensors)."""
        rot, dev = self.rotation, params["means"].device
        q_rot = rotation_to_quat(rot).to(dev)
        sh = sh_rotation(rot, sh_degree_of(params)).to(dev)  # [K-1, K-1]
        means = (params["means"].detach().double() @ rot.T.to(dev) - self.center.to(dev)) * self.scale  # [N, 3]
        return {
            "means": means.float(),
            "scales": (params["scales"].detach().double() + math.log(self.scale)).float(),
            "quats": quat_multiply(q_rot, params["quats"].detach().double()).float(),
            "opacities": params["opacities"].detach().clone(),
            "sh0": params["sh0"].detach().clone(),
            "shN": torch.einsum("jk,nkc->njc", sh, params["shN"].detach().double()).float(),
        }

    def to_file(self, params: dict) -> dict[str, Tensor]:
        """The inverse of `to_engine` (CPU float32 tensors)."""
        rot = self.rotation
        q_inv = rotation_to_quat(rot) * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
        sh = sh_rotation(rot, sh_degree_of(params))  # orthogonal: its inverse is its transpose
        p = {k: v.detach().cpu() for k, v in params.items()}
        return {
            "means": ((p["means"].double() / self.scale + self.center) @ rot).float(),
            "scales": (p["scales"].double() - math.log(self.scale)).float(),
            "quats": quat_multiply(q_inv, p["quats"].double()).float(),
            "opacities": p["opacities"].clone(),
            "sh0": p["sh0"].clone(),
            "shN": torch.einsum("kj,nkc->njc", sh, p["shN"].double()).float(),
        }

    def describe(self) -> dict:
        """For the manifest: the up axis and the robust centre (file coordinates) and scale."""
        return {"up": self.up, "center_file": (self.rotation.T @ self.center).tolist(), "scale": self.scale}
