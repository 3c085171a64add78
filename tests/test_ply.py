"""INRIA 3DGS .ply files: exact round trips, files from other writers, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lucidkit.errors import UserError
from lucidkit.splat.ply import (
    PlyError,
    gaussian_property_names,
    ply_header_text,
    read_ply,
    read_vertices,
    write_ply,
    write_vertices,
)
from lucidkit.splat.scene import create_splats, num_sh_bases


def random_splats(n: int, sh_degree: int, seed: int = 0) -> torch.nn.ParameterDict:
    """Every parameter filled with distinct random values, so a swapped or transposed column shows."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "means": (n, 3),
        "scales": (n, 3),
        "quats": (n, 4),
        "opacities": (n,),
        "sh0": (n, 1, 3),
        "shN": (n, num_sh_bases(sh_degree) - 1, 3),
    }
    return torch.nn.ParameterDict({name: torch.randn(*shape, generator=g) for name, shape in shapes.items()})


def assert_same_splats(a, b) -> None:
    assert set(a.keys()) == set(b.keys())
    for name in a.keys():
        assert a[name].shape == b[name].shape, name
        assert torch.equal(a[name].detach().cpu(), b[name].detach().cpu()), name  # bit-exact


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
@pytest.mark.parametrize("with_normals", [True, False])
def test_round_trip_is_bit_exact(tmp_path, sh_degree, with_normals):
    splats = random_splats(57, sh_degree)
    normals = torch.randn(57, 3) if with_normals else None
    path = write_ply(tmp_path / "scene.ply", splats, normals=normals, with_normals=with_normals)

    scene = read_ply(path)
    assert scene.sh_degree == sh_degree
    assert scene.has_normals == with_normals
    assert scene.num_gaussians == 57
    assert_same_splats(splats, scene.splats)
    if with_normals:
        assert torch.equal(scene.normals, normals)
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in scene.splats.values())
    # The file has exactly the INRIA header and 4 bytes per property per Gaussian, nothing else.
    n_props = 3 + 3 * with_normals + 3 * num_sh_bases(sh_degree) + 1 + 3 + 4
    header = ply_header_text(57, sh_degree, with_normals).encode()
    assert path.read_bytes().startswith(header)
    assert path.stat().st_size == len(header) + 57 * 4 * n_props


def test_header_has_the_property_order_viewers_expect(tmp_path):
    # Written out by hand from the INRIA 3DGS layout: 3DGS's SIBR viewer reads the vertex data as a fixed
    # struct in this order (position, normal, f_dc, f_rest channel-major, opacity, scale, rotation).
    splats = random_splats(2, sh_degree=1)
    path = write_ply(tmp_path / "scene.ply", splats)
    expected = (
        "ply\n"
        "format binary_little_endian 1.0\n"
        "element vertex 2\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n"
        + "".join(f"property float f_rest_{i}\n" for i in range(9))
        + "property float opacity\n"
        "property float scale_0\nproperty float scale_1\nproperty float scale_2\n"
        "property float rot_0\nproperty float rot_1\nproperty float rot_2\nproperty float rot_3\n"
        "end_header\n"
    )
    data = path.read_bytes()
    assert data[: len(expected)] == expected.encode()
    # f_rest is channel-major: f_rest_0..2 are the red coefficients 1..3, f_rest_3..5 the green ones.
    row = np.frombuffer(data[len(expected) :], dtype="<f4").reshape(2, -1)[0]
    shN = splats["shN"].detach()[0]  # [3, 3] (coefficient, channel)
    np.testing.assert_array_equal(row[9:12], shN[:, 0].numpy())
    np.testing.assert_array_equal(row[12:15], shN[:, 1].numpy())
    np.testing.assert_array_equal(row[6:9], splats["sh0"].detach()[0, 0].numpy())


def test_reads_a_file_written_by_gsplat(tmp_path):
    from gsplat.exporter import export_splats

    splats = random_splats(40, sh_degree=3, seed=1)
    path = tmp_path / "gsplat.ply"
    export_splats(**{k: v.detach() for k, v in splats.items()}, format="ply", save_to=str(path))

    scene = read_ply(path)
    assert scene.sh_degree == 3 and not scene.has_normals
    assert_same_splats(splats, scene.splats)


def test_create_splats_round_trip(tmp_path):
    splats = create_splats(torch.rand(30, 3), torch.rand(30, 3), sh_degree=2)
    assert_same_splats(splats, read_ply(write_ply(tmp_path / "s.ply", splats)).splats)


def test_other_encodings_property_orders_and_extra_properties(tmp_path):
    splats = random_splats(9, sh_degree=1)
    columns = read_vertices(write_ply(tmp_path / "ref.ply", splats, with_normals=False))
    # Reversed order, doubles instead of floats, and extra properties of other types.
    shuffled = {name: columns[name].astype(np.float64) for name in reversed(list(columns))}
    shuffled["confidence"] = np.arange(9, dtype=np.float32)
    shuffled["label"] = np.arange(9, dtype=np.uint8)
    for fmt in ("binary_little_endian", "binary_big_endian", "ascii"):
        scene = read_ply(write_vertices(tmp_path / f"{fmt}.ply", shuffled, format=fmt))
        assert_same_splats(splats, scene.splats)
        assert scene.ignored_properties == ["confidence", "label"]


def small_file(tmp_path):
    """10 Gaussians, SH degree 0, no normals: 14 floats = 56 bytes each."""
    return write_ply(tmp_path / "bad.ply", random_splats(10, sh_degree=0), with_normals=False)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = small_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(PlyError) as err:
        read_ply(path)
    message = str(err.value)
    assert str(path) in message
    assert "truncated: expected 560 bytes of vertex data, found 460" in message
    assert isinstance(err.value, UserError)


def test_wrong_magic_is_a_clear_error(tmp_path):
    path = tmp_path / "model.ply"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not a ply at all")
    with pytest.raises(PlyError, match="not a PLY file") as err:
        read_ply(path)
    assert str(path) in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PlyError, match="no such file"):
        read_ply(tmp_path / "nope.ply")


def test_missing_properties_are_named(tmp_path):
    columns = read_vertices(write_ply(tmp_path / "full.ply", random_splats(5, sh_degree=0)))
    del columns["opacity"], columns["rot_3"]
    path = write_vertices(tmp_path / "no_opacity.ply", columns)
    with pytest.raises(PlyError) as err:
        read_ply(path)
    assert str(path) in str(err.value)
    assert "missing vertex properties opacity, rot_3" in str(err.value)


def test_point_cloud_given_as_scene_gets_a_hint(tmp_path):
    path = write_vertices(tmp_path / "points.ply", {c: np.zeros(4, np.float32) for c in "xyz"})
    with pytest.raises(PlyError, match="plain point cloud"):
        read_ply(path)


def test_nan_values_are_counted(tmp_path):
    path = small_file(tmp_path)
    header = len(ply_header_text(10, 0, False))
    data = np.fromfile(path, dtype="<f4", offset=header).reshape(10, 14)
    data[3, 6] = np.nan  # opacity of Gaussian 3 (x y z f_dc_0..2 opacity ...)
    data[8, 0] = np.inf  # x of Gaussian 8
    path.write_bytes(path.read_bytes()[:header] + data.tobytes())
    with pytest.raises(PlyError) as err:
        read_ply(path)
    message = str(err.value)
    assert str(path) in message
    assert "2 of 10 Gaussians have NaN or infinite values" in message
    assert "vertex 3, property opacity" in message


def test_unsupported_sh_count_and_integer_types_are_clear_errors(tmp_path):
    columns = {name: np.zeros(3, np.float32) for name in gaussian_property_names(0, with_normals=False)}
    odd = dict(columns, **{f"f_rest_{i}": np.zeros(3, np.float32) for i in range(10)})
    with pytest.raises(PlyError, match="has 10 f_rest properties; expected 0, 9, 24 or 45"):
        read_ply(write_vertices(tmp_path / "odd.ply", odd))
    as_bytes = dict(columns, opacity=np.zeros(3, np.uint8))
    with pytest.raises(PlyError, match="property 'opacity' is stored as uint8; expected float or double"):
        read_ply(write_vertices(tmp_path / "uchar.ply", as_bytes))


def test_ascii_vertex_data_with_too_few_lines_is_truncated(tmp_path):
    columns = {name: np.ones(4, np.float32) for name in gaussian_property_names(0, with_normals=False)}
    path = write_vertices(tmp_path / "a.ply", columns, format="ascii")
    path.write_bytes(path.read_bytes().rsplit(b"\n", 2)[0] + b"\n")  # drop the last line
    with pytest.raises(PlyError, match="truncated: expected 4 vertex lines, found 3"):
        read_ply(path)


def test_writing_nan_refuses_and_keeps_the_old_file(tmp_path):
    path = write_ply(tmp_path / "scene.ply", random_splats(4, 0))
    before = path.read_bytes()
    bad = random_splats(4, 0)
    bad["means"].data[1, 2] = float("nan")
    with pytest.raises(ValueError, match="1 of 4 Gaussians"):
        write_ply(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.ply"]
