"""Scenes: lazy (y, x, band) DataArrays from files — bands, stretch, nodata, staging, previews."""

from __future__ import annotations

import hashlib
import pickle
from fractions import Fraction
from pathlib import Path

import cv2
import dask
import numpy as np
import pytest
import rasterio
import rasterio.io
import rasterio.shutil
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from selo.errors import InputNotFoundError, OutputError, ParameterError, SceneError
from selo.pipeline import cache as cache_module
from selo.pipeline.cache import Cache
from selo.pipeline.preview import decimation_indices, preview_shape, read_preview
from selo.pipeline.scene import open_scene, source_info
from selo.pipeline.scenefile import inspect_scene

UTM = "EPSG:32633"
TRANSFORM = from_origin(500_000, 4_000_000, 10, 10)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Keep staged scenes and the key index inside the test's folder."""
    monkeypatch.setenv("SELO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_tif(path: Path, data: np.ndarray, **profile) -> Path:
    """Write ``(bands, rows, cols)`` data as a GeoTIFF with the given profile."""
    with rasterio.open(
        path,
        "w",
        driver=profile.pop("driver", "GTiff"),
        count=data.shape[0],
        height=data.shape[1],
        width=data.shape[2],
        dtype=data.dtype,
        **profile,
    ) as dst:
        dst.write(data)
    return path


def gradient(bands: int = 3, rows: int = 96, cols: int = 160) -> np.ndarray:
    """A uint8 image whose bands differ, so band order mistakes show."""
    y, x = np.mgrid[0:rows, 0:cols]
    return np.stack([(x * 255 // cols + 40 * b + y) % 256 for b in range(bands)]).astype(np.uint8)


def rgb(scene) -> np.ndarray:
    """The scene's pixels band-first, as the files hold them."""
    return scene.transpose("band", "y", "x").values


def valid_of(scene) -> np.ndarray | None:
    return scene.coords["valid"].values if "valid" in scene.coords else None


def staged_of(scene) -> Path | None:
    """The staged copy a scene reads (None: it reads its file itself)."""
    source = scene.encoding["selo_source"]
    location = source.files[0].location
    return Path(location) if location != source.label else None


def conversion_of(scene):
    """How the scene's source channels become uint8."""
    return scene.encoding["selo_source"].conversion


def bands_of(scene) -> tuple[int, ...]:
    """The file bands the scene shows, in order."""
    return tuple(source_info(scene)["bands"])


def scene_key(path):
    return Cache().scene_key(path)


@pytest.fixture
def utm_tif(tmp_path) -> Path:
    """A tiled 3-band uint8 GeoTIFF in UTM 33N."""
    return write_tif(
        tmp_path / "utm.tif",
        gradient(),
        crs=UTM,
        transform=TRANSFORM,
        tiled=True,
        blockxsize=32,
        blockysize=32,
    )


class CountReads:
    """Counts rasterio reads of pixel data, with the ``out_shape`` of each."""

    def __init__(self, monkeypatch):
        self.out_shapes = []
        read = rasterio.io.DatasetReader.read

        def counting(ds, *args, **kwargs):
            self.out_shapes.append(kwargs.get("out_shape"))
            return read(ds, *args, **kwargs)

        monkeypatch.setattr(rasterio.io.DatasetReader, "read", counting)


def test_inspect_scene_reads_the_header(utm_tif):
    info = inspect_scene(utm_tif)
    assert (info.height, info.width, info.count, info.dtype) == (96, 160, 3, "uint8")
    assert info.crs == UTM
    assert info.transform == TRANSFORM
    assert info.nodata is None
    assert info.driver == "GTiff"
    assert info.block_shape == (32, 32)


def test_open_scene_keeps_values_and_georeferencing(utm_tif):
    scene = open_scene(utm_tif, chunk=100)
    assert scene.dims == ("y", "x", "band")
    assert scene.dtype == np.uint8
    np.testing.assert_array_equal(rgb(scene), gradient())
    assert scene.rio.crs.to_string() == UTM
    assert scene.rio.transform() == TRANSFORM
    assert valid_of(scene) is None


@pytest.mark.parametrize(
    ("block", "chunk", "expected"),
    [
        ((32, 32), 100, (96, 96)),  # largest multiple of the tile under chunk
        ((32, 32), 64, (64, 64)),  # chunk already a multiple
        ((32, 32), 20, (20, 20)),  # chunk smaller than a tile
        ((12, None), 50, (48, 50)),  # strips of 12 full-width rows
    ],
)
def test_chunks_follow_the_file_blocks(tmp_path, block, chunk, expected):
    rows, cols = block
    profile = {"tiled": True, "blockxsize": cols} if cols else {}
    profile["blockysize"] = rows
    scene = open_scene(write_tif(tmp_path / "s.tif", gradient(), **profile), chunk=chunk)
    rows, cols, bands = scene.data.chunks
    assert bands == (3,)
    assert (rows[0], cols[0]) == expected
    assert max(rows) <= chunk and max(cols) <= chunk


def test_open_scene_reads_no_pixels_until_computed(utm_tif, monkeypatch):
    reads = CountReads(monkeypatch)
    scene = open_scene(utm_tif, chunk=64)
    assert reads.out_shapes == []
    scene[:64, :64].compute()
    assert reads.out_shapes == [None]  # one 3-band read of one chunk


def test_open_scene_samples_a_decimated_read_for_the_stretch(tmp_path, monkeypatch):
    path = write_tif(tmp_path / "u16.tif", gradient().astype(np.uint16) * 100)
    reads = CountReads(monkeypatch)
    open_scene(path)
    assert reads.out_shapes == [(3, 96, 160)]


def test_scene_pickles_for_process_workers(utm_tif):
    scene = open_scene(utm_tif, chunk=64)
    copy = pickle.loads(pickle.dumps(scene.data))
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(np.moveaxis(copy.compute(), -1, 0), gradient())


@pytest.mark.parametrize(
    ("count", "interp", "bands", "expected"),
    [
        (1, None, None, (1, 1, 1)),  # gray
        (2, None, None, (1, 1, 1)),  # gray + alpha
        (3, None, None, (1, 2, 3)),
        (4, ("blue", "green", "red", "undefined"), None, (3, 2, 1)),  # declared colours win
        (4, ("gray", "undefined", "undefined", "undefined"), None, (1, 2, 3)),
        (4, None, (4, 3, 2), (4, 3, 2)),  # explicit, e.g. false colour
        (1, None, (1, 1, 1), (1, 1, 1)),
    ],
)
def test_band_choice(tmp_path, count, interp, bands, expected):
    data = gradient(count)
    path = write_tif(tmp_path / "b.tif", data, photometric="MINISBLACK")
    if interp:
        with rasterio.open(path, "r+") as ds:
            ds.colorinterp = [ColorInterp[name] for name in interp]
    scene = open_scene(path, bands=bands)
    assert bands_of(scene) == expected
    np.testing.assert_array_equal(rgb(scene), data[[b - 1 for b in expected]])


@pytest.mark.parametrize(
    "bands",
    [
        (1, 2, 9),  # beyond the band count
        (0, 1, 2),  # bands are 1-based
        (1, 2),  # not three
        (1, 2, 2.0),  # not integers
        3,  # not a sequence
    ],
)
def test_bad_bands_name_the_file_and_its_band_count(utm_tif, bands):
    with pytest.raises(ParameterError, match=r"utm\.tif.*3 band"):
        open_scene(utm_tif, bands=bands)


def test_uint16_is_stretched_from_the_2nd_to_the_98th_percentile(tmp_path):
    ramp = np.arange(100 * 100, dtype=np.uint16).reshape(1, 100, 100)
    data = np.concatenate([ramp, ramp // 2, np.full_like(ramp, 7)])  # last band constant
    scene = open_scene(write_tif(tmp_path / "u16.tif", data))
    (lo, hi), (lo2, hi2), (lo3, hi3) = conversion_of(scene).stretch
    assert (lo, hi) == pytest.approx(np.percentile(ramp, [2, 98]))
    pixels = rgb(scene)
    expected = np.clip(np.rint((ramp[0] - lo) * np.float32(255 / (hi - lo))), 0, 255)
    np.testing.assert_array_equal(pixels[0], expected)
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, -1] == 255
    assert not pixels[2].any()  # a constant band maps to 0


def test_float_nan_is_nodata_and_ignored_by_the_stretch(tmp_path):
    data = np.linspace(-1, 1, 60 * 80, dtype=np.float32).reshape(1, 60, 80)
    data[0, :10] = np.nan
    scene = open_scene(write_tif(tmp_path / "f.tif", data))
    lo, hi = conversion_of(scene).stretch[0]
    assert np.isfinite([lo, hi]).all()
    valid = valid_of(scene)
    assert not valid[:10].any() and valid[10:].all()
    assert not rgb(scene)[:, :10].any()
    assert rgb(scene)[:, -1, -1].tolist() == [255, 255, 255]


def test_nodata_needs_every_selected_band(tmp_path):
    data = gradient()
    data[:, 0, 0] = 0  # nodata in all bands
    data[0, 0, 1] = 0  # in one band only: still data
    scene = open_scene(write_tif(tmp_path / "n.tif", data, nodata=0))
    valid = valid_of(scene)
    assert not valid[0, 0] and valid[0, 1]
    assert valid.sum() == valid.size - 1


def test_uint16_nodata_is_ignored_by_the_stretch(tmp_path):
    data = (gradient().astype(np.uint16) + 1000) * 10
    data[:, :20] = 65535
    scene = open_scene(write_tif(tmp_path / "n16.tif", data, nodata=65535))
    assert all(hi < 65535 for _, hi in conversion_of(scene).stretch)
    assert not valid_of(scene)[:20].any()
    assert not rgb(scene)[:, :20].any()


def test_internal_mask_marks_nodata(tmp_path):
    path = write_tif(tmp_path / "m.tif", gradient())
    mask = np.full((96, 160), 255, np.uint8)
    mask[40:50, 60:70] = 0
    with rasterio.open(path, "r+") as ds:
        ds.write_mask(mask)
    scene = open_scene(path, chunk=32)
    np.testing.assert_array_equal(valid_of(scene), mask > 0)
    assert not rgb(scene)[:, 40:50, 60:70].any()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_all_nodata_scene_opens(tmp_path, dtype):
    data = np.zeros((3, 20, 30), dtype)
    scene = open_scene(write_tif(tmp_path / "empty.tif", data, nodata=0))
    assert not valid_of(scene).any()
    assert not rgb(scene).any()
    assert not read_preview(scene).any()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_one_pixel_scene_opens(tmp_path, dtype):
    scene = open_scene(write_tif(tmp_path / "px.tif", np.ones((1, 1, 1), dtype)))
    assert scene.shape == (1, 1, 3)
    assert read_preview(scene).shape == (1, 1, 3)


def make_bad_scene(tmp_path: Path, kind: str) -> Path:
    """A path that is not a usable scene, of the given kind."""
    path = tmp_path / "bad.tif"
    if kind == "folder":
        path.mkdir()
    elif kind == "truncated":
        good = write_tif(tmp_path / "good.tif", gradient(rows=200, cols=200), compress="deflate")
        path.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    elif kind == "text":
        path.write_text("not a raster\n")
    elif kind == "empty":
        path.touch()
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("folder", "it is a folder"),
        ("truncated", "truncated"),
        ("text", "not a raster rasterio can read"),
        ("empty", "not a raster rasterio can read"),
    ],
)
@pytest.mark.parametrize("opener", [inspect_scene, open_scene])
def test_unusable_scenes_raise_scene_error(tmp_path, kind, message, opener):
    with pytest.raises(SceneError, match=message) as raised:
        opener(make_bad_scene(tmp_path, kind))
    assert "bad.tif" in str(raised.value)


def sparse_tif(path: Path, *, nodata, side: int = 1024) -> Path:
    """A GeoTIFF with one 256x256 tile of data and the others left out (SPARSE_OK)."""
    profile = dict(driver="GTiff", height=side, width=side, count=1, dtype="uint8", nodata=nodata)
    profile.update(tiled=True, blockxsize=256, blockysize=256, SPARSE_OK=True, compress="zstd")
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.full((1, 256, 256), 7, np.uint8), window=((0, 256), (0, 256)))
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "zstd",  # a constant scene: tens of thousands of pixels per byte
        "deflate",
        "png",  # deflate at its limit, 8-bit gray
        "sparse",  # empty blocks left out on purpose, nodata says what they hold
    ],
)
def test_highly_compressed_scenes_are_not_refused(tmp_path, kind):
    """Legitimate files far beyond 1000 pixels per byte (zstd, sparse) open: the lying-header
    checks read the block table and the data, not a compression ratio."""
    side = 4096  # above the size under which any compression ratio is believed
    flat = np.full((1, side, side), 90, np.uint8)
    if kind == "png":
        path = tmp_path / "flat.png"
        cv2.imwrite(str(path), flat[0])
    elif kind == "sparse":
        path = sparse_tif(tmp_path / "sparse.tif", nodata=0, side=side)
    else:
        profile = dict(tiled=True, blockxsize=512, blockysize=512, compress=kind)
        path = write_tif(tmp_path / f"{kind}.tif", flat, **profile)
    info = inspect_scene(path)
    assert (info.height, info.width) == (side, side)
    if kind in ("zstd", "sparse"):
        assert path.stat().st_size * 1000 < side * side


def test_sparse_geotiff_needs_a_nodata_value(tmp_path):
    with pytest.raises(SceneError, match="15 of them are not in the file.*needs a nodata value"):
        inspect_scene(sparse_tif(tmp_path / "sparse.tif", nodata=None))


def _patch_tiff_size(path: Path, width: int, height: int) -> Path:
    import struct

    data = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):
            size = (width, height)[tag - 256]
            struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, size)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("nodata", [None, 0])
@pytest.mark.parametrize("interleave", ["pixel", "band"])
def test_header_claiming_more_blocks_than_its_table_is_refused(tmp_path, nodata, interleave):
    """The issue's case: four tiles of data, a header claiming 65535x65535 pixels."""
    profile = dict(tiled=True, blockxsize=256, blockysize=256, nodata=nodata, interleave=interleave)
    path = write_tif(tmp_path / "lying.tif", gradient(rows=512, cols=512), **profile)
    _patch_tiff_size(path, 65535, 65535)
    with pytest.raises(SceneError, match=r"lying.tif: damaged GeoTIFF: .*65535×65535"):
        inspect_scene(path)


def test_png_whose_header_claims_more_rows_than_its_data(tmp_path):
    import struct
    import zlib

    from selo.pipeline.scenefile import verify_png

    path = tmp_path / "lying.png"
    cv2.imwrite(str(path), gradient(rows=100, cols=120)[0])
    data = bytearray(path.read_bytes())
    struct.pack_into(">II", data, 16, 120, 1000)  # and a CRC that matches the lie
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    with pytest.raises(SceneError, match="pixel data ends after 12100 of the 121000 bytes"):
        verify_png(path)
    with pytest.raises(SceneError, match="lying.png: damaged PNG"):
        open_scene(path)


def test_uncompressed_block_shorter_than_its_size_is_refused(tmp_path):
    import struct

    tiles = dict(tiled=True, blockxsize=32, blockysize=32)
    path = write_tif(tmp_path / "raw.tif", gradient(rows=64, cols=64), **tiles)
    data = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind, count, where = struct.unpack_from("<HHII", data, entry)
        if tag == 325:  # TileByteCounts: the first tile claims fewer bytes than it needs
            struct.pack_into("<H" if kind == 3 else "<I", data, where, 100)
    path.write_bytes(bytes(data))
    with pytest.raises(SceneError, match="pixel block 0,0 holds 100 bytes"):
        inspect_scene(path)


@pytest.mark.parametrize("opener", [inspect_scene, open_scene, scene_key])
def test_missing_scene_raises_input_not_found(tmp_path, opener):
    with pytest.raises(InputNotFoundError, match="nowhere.tif"):
        opener(tmp_path / "nowhere.tif")


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Write ``(1, 3 or 4, rows, cols)`` gray or RGB(A) with OpenCV (BGR order on its side)."""
    order = [2, 1, 0, 3][: rgb.shape[0]] if rgb.shape[0] >= 3 else [0]
    cv2.imwrite(str(path), rgb[order].transpose(1, 2, 0))
    return path


@pytest.mark.parametrize(("bands", "expected"), [(3, [0, 1, 2]), (1, [0, 0, 0])])
def test_png_is_staged_and_read_from_the_staged_geotiff(tmp_path, bands, expected):
    path = write_image(tmp_path / "s.png", gradient(bands))
    scene = open_scene(path)
    assert staged_of(scene).parent == tmp_path / "cache" / "staged"
    with rasterio.open(staged_of(scene)) as staged:  # a tiled, uncompressed GeoTIFF
        assert staged.driver == "GTiff" and staged.profile.get("tiled") and not staged.compression
    assert scene.rio.crs is None and scene.rio.transform() == Affine.identity()
    assert scene.data.chunks[2] == (3,)
    path.unlink()  # pixels now come from the stage only
    np.testing.assert_array_equal(rgb(scene), gradient(bands)[expected])


def test_jpeg_is_staged(tmp_path):
    scene = open_scene(write_image(tmp_path / "s.jpg", gradient()), cache=Cache(tmp_path / "st"))
    assert staged_of(scene).parent == tmp_path / "st" / "staged"
    error = np.abs(rgb(scene).astype(int) - gradient()).mean()
    assert error < 3  # JPEG is lossy


def test_png_alpha_is_staged_as_the_mask(tmp_path):
    rgba = np.concatenate([gradient(), np.full((1, 96, 160), 255, np.uint8)])
    rgba[3, :, :30] = 0
    scene = open_scene(write_image(tmp_path / "a.png", rgba))
    assert bands_of(scene) == (1, 2, 3)
    np.testing.assert_array_equal(valid_of(scene), rgba[3] > 0)
    assert not rgb(scene)[:, :, :30].any()
    expected = gradient().transpose(1, 2, 0)
    np.testing.assert_array_equal(read_preview(scene)[:, 30:], expected[:, 30:])


def test_paletted_png_goes_through_its_colour_table(tmp_path):
    index = (np.arange(40 * 50).reshape(1, 40, 50) % 4).astype(np.uint8)
    colours = {0: (255, 0, 0, 255), 1: (0, 255, 0, 255), 2: (0, 0, 255, 255), 3: (9, 9, 9, 255)}
    path = tmp_path / "p.tif"
    write_tif(path, index, photometric="PALETTE")
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, colours)
    png = tmp_path / "p.png"
    rasterio.shutil.copy(path, png, driver="PNG")
    scene = open_scene(png)
    table = np.array([colours[i][:3] for i in range(4)], np.uint8)
    np.testing.assert_array_equal(rgb(scene), table[index[0]].transpose(2, 0, 1))


def test_staged_store_is_reused(tmp_path, monkeypatch):
    path = write_image(tmp_path / "s.png", gradient())
    first = open_scene(path)

    def fail(*args):
        raise AssertionError("staged again")

    monkeypatch.setattr(cache_module, "write_staged_copy", fail)
    second = open_scene(path)
    assert staged_of(second) == staged_of(first)
    np.testing.assert_array_equal(rgb(second), gradient())


def test_interrupted_staging_leaves_nothing_and_is_redone(tmp_path, monkeypatch):
    path = write_image(tmp_path / "s.png", gradient())
    write_stage = cache_module.write_staged_copy

    def disk_full(source, info, target):
        write_stage(source, info, target)  # the copy is written, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module, "write_staged_copy", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        open_scene(path)
    staged_dir = tmp_path / "cache" / "staged"
    assert list(staged_dir.iterdir()) == []  # nothing half-written under any name
    monkeypatch.setattr(cache_module, "write_staged_copy", write_stage)
    scene = open_scene(path)
    np.testing.assert_array_equal(rgb(scene), gradient())
    assert [p.name for p in staged_dir.iterdir()] == [staged_of(scene).name]


def test_truncated_jpeg_is_a_scene_error(tmp_path):
    good = write_image(tmp_path / "good.jpg", gradient(rows=400, cols=400))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SceneError, match="bad.jpg"):
        open_scene(bad)
    assert not [p for p in (tmp_path / "cache" / "staged").glob("*") if p.suffix == ".tif"]


def test_scene_key_follows_content_and_is_remembered(tmp_path, monkeypatch, cache_dir):
    path = tmp_path / "scene.bin"
    path.write_bytes(b"first")
    hashed = []
    file_digest = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda *a: hashed.append(1) or file_digest(*a))
    key = scene_key(path)
    assert key == hashlib.sha256(b"first").hexdigest()
    assert scene_key(path) == key and len(hashed) == 1  # remembered, not rehashed
    assert (cache_dir / "scene-keys.json").is_file()
    path.write_bytes(b"second, longer")
    assert scene_key(path) == hashlib.sha256(b"second, longer").hexdigest()
    assert len(hashed) == 2


@pytest.mark.parametrize("staged", [False, True])
def test_read_preview_samples_like_the_full_scene(tmp_path, staged):
    data = gradient(rows=300, cols=500)
    path = write_image(tmp_path / "s.png", data) if staged else write_tif(tmp_path / "s.tif", data)
    scene = open_scene(path)
    preview = read_preview(scene, max_side=100)
    assert preview.shape == (60, 100, 3)
    rows, cols = decimation_indices(300, 60), decimation_indices(500, 100)
    np.testing.assert_array_equal(preview, data[:, rows][:, :, cols].transpose(1, 2, 0))


def test_read_preview_applies_the_stretch(tmp_path):
    data = gradient(rows=300, cols=500).astype(np.float32) * 3.5 - 100
    scene = open_scene(write_tif(tmp_path / "f.tif", data))
    preview = read_preview(scene, max_side=100)
    rows, cols = decimation_indices(300, 60), decimation_indices(500, 100)
    full = rgb(scene)[:, rows][:, :, cols].transpose(1, 2, 0)
    np.testing.assert_array_equal(preview, full)


@pytest.mark.parametrize(
    ("shape", "max_side", "expected"),
    [
        ((1000, 2000), 500, (250, 500)),
        ((2000, 1000), 500, (500, 250)),
        ((300, 400), 2048, (300, 400)),  # never enlarged
        ((40000, 3), 1000, (1000, 1)),  # at least one pixel
    ],
)
def test_preview_shape(utm_tif, shape, max_side, expected):
    assert preview_shape(shape, max_side) == expected


@given(st.integers(1, 5000), st.data())
def test_decimation_indices_sample_pixel_centres(size, data):
    out = data.draw(st.integers(1, size))
    indices = decimation_indices(size, out)
    expected = [int((Fraction(i) + Fraction(1, 2)) * size / out) for i in range(out)]
    assert indices.tolist() == expected
    assert indices[0] >= 0 and indices[-1] < size


@pytest.mark.parametrize("kind", ["file", "array", "file slice"])
def test_region_readers_shrink_a_window_to_out_shape(tmp_path, kind):
    """``out_shape``: the pixel under each output pixel's centre (GDAL's nearest for files)."""
    from scenes import colour_scene, write_geotiff_scene

    from selo.pipeline.scene import as_scene, region_reader

    pixels = colour_scene((700, 900))
    if kind == "array":
        scene = as_scene(pixels)
    else:
        scene = open_scene(write_geotiff_scene(tmp_path / "s.tif", pixels), chunk=256)
    offset = (0, 0)
    if kind == "file slice":
        scene, offset = scene.isel(y=slice(50, 650), x=slice(100, 900)), (50, 100)
    read = region_reader(scene)
    for (r0, r1, c0, c1), out in [((0, 512, 0, 512), (256, 256)), ((10, 300, 40, 600), (100, 77))]:
        rgb, valid = read(r0, r1, c0, c1, out_shape=out)
        rows = offset[0] + r0 + decimation_indices(r1 - r0, out[0])
        cols = offset[1] + c0 + decimation_indices(c1 - c0, out[1])
        np.testing.assert_array_equal(rgb, pixels[rows][:, cols])
        assert valid is None
        full, _ = read(r0, r1, c0, c1)  # without out_shape: the window itself
        np.testing.assert_array_equal(
            full, pixels[offset[0] + r0 : offset[0] + r1, offset[1] + c0 : offset[1] + c1]
        )


@pytest.mark.parametrize("bigtiff", ["NO", "YES"])
@pytest.mark.parametrize("endianness", ["LITTLE", "BIG"])
@pytest.mark.parametrize(("tiled", "interleave"), [(True, "pixel"), (False, "band")])
def test_block_tables_read_from_classic_and_big_tiffs_either_byte_order(
    tmp_path, bigtiff, endianness, tiled, interleave
):
    """The lying-header check reads the TIFF directory itself: the blocks a 300x700 image
    needs equal the entries GDAL wrote, for classic TIFF and BigTIFF, little- and big-endian,
    tiles and (planar) strips."""
    from selo.pipeline.scenefile import _tiff_table_sizes

    profile = dict(driver="GTiff", width=700, height=300, count=3, dtype="uint8",
                   BIGTIFF=bigtiff, ENDIANNESS=endianness, interleave=interleave)  # fmt: skip
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=128)
    else:
        profile.update(blockysize=16)
    path = tmp_path / "t.tif"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.zeros((3, 300, 700), np.uint8))
    expected = 3 * 3 if tiled else 3 * 19  # tiles 3x3 (pixel-interleaved); 19 strips a band
    assert _tiff_table_sizes(path) == (expected, expected)


@pytest.mark.parametrize("interleave", ["pixel", "band"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_interleaved_reads_equal_band_reads(tmp_path, interleave, dtype):
    """Pixels read into a (rows, cols, bands) buffer are the band-by-band read's values, as
    a (bands, rows, cols) view whose moveaxis is that buffer: no copy to interleave."""
    from rasterio.windows import Window

    from selo.pipeline.scenefile import read_pixels

    data = np.random.default_rng(0).integers(0, 3000, (4, 300, 500)).astype(dtype)
    path = tmp_path / "s.tif"
    with rasterio.open(
        path, "w", driver="GTiff", height=300, width=500, count=4, dtype=dtype,
        interleave=interleave, tiled=True, blockxsize=128, blockysize=128,
    ) as ds:  # fmt: skip
        ds.write(data)
    with rasterio.open(path) as ds:
        for kwargs in (
            {},
            {"window": Window(37, 11, 301, 190)},
            {"window": Window(37, 11, 301, 190), "out_shape": (50, 70)},
            {"out_shape": (33, 44)},
        ):
            plain, _ = read_pixels(ds, (3, 1, 2), **kwargs)
            fast, _ = read_pixels(ds, (3, 1, 2), interleaved=True, **kwargs)
            np.testing.assert_array_equal(fast, plain)
            assert np.moveaxis(fast, 0, -1).flags.c_contiguous
