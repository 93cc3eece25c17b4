"""Tests for selo.pipeline.outputs: georeferenced, atomic, bounded-memory writers."""

from __future__ import annotations

import errno
import json
import pathlib
import tracemalloc
from pathlib import Path

import cv2
import dask.array as da
import numpy as np
import pytest
import rasterio
import rasterio.io
import rasterio.shutil
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rasterio.transform import from_origin
from reference import reference_cog

from selo.errors import MapError, OutputError, ParameterError
from selo.pipeline import outputs
from selo.pipeline.outputs import (
    SpooledMap,
    fan_out,
    overview_shapes,
    pixel_to_crs,
    png_rows,
    regions_from_map,
    spool,
    write_geojson,
    write_geotiff,
    write_overlay,
    write_png,
    write_side_by_side,
)
from selo.pipeline.preview import RowSampler, decimate
from selo.pipeline.scene import Grid

UTM = "EPSG:32633"
TRANSFORM = from_origin(500_000, 4_000_000, 10, 10)


def scene(height: int = 200, width: int = 300, *, georeferenced: bool = True) -> Grid:
    """The grid of a scene, georeferenced in UTM 33N or not at all."""
    return Grid(
        height=height,
        width=width,
        crs=UTM if georeferenced else None,
        transform=TRANSFORM if georeferenced else Affine.identity(),
    )


def selo_map(height: int = 200, width: int = 300) -> np.ndarray:
    """A uint8 map with some structure (so tiles and rows differ)."""
    y, x = np.mgrid[0:height, 0:width]
    return ((x * 7 + y * 3) % 256).astype(np.uint8)


@pytest.mark.parametrize("chunks", [None, 64, (70, 300), (33, 41)])
def test_geotiff_round_trip(tmp_path, chunks):
    data = selo_map()
    source = data if chunks is None else da.from_array(data, chunks=chunks)
    path = write_geotiff(tmp_path / "map.tif", source, like=scene())
    with rasterio.open(path) as ds:
        assert ds.crs.to_string() == UTM
        assert ds.transform == TRANSFORM
        assert ds.block_shapes == [(512, 512)]
        assert ds.profile["tiled"] and ds.compression.value == "DEFLATE"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.nodata is None
        np.testing.assert_array_equal(ds.read(1), data)
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]


def test_large_geotiff_is_a_cog_with_overviews(tmp_path):
    data = np.tile(selo_map(), (10, 10))  # 2000 x 3000
    path = write_geotiff(tmp_path / "map.tif", data, like=scene(2000, 3000))
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.overviews(1) == [2, 4, 8]
        np.testing.assert_array_equal(ds.read(1), data)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 1300), st.integers(1, 1300)),
    pattern=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    georeferenced=st.booleans(),
    nodata=st.sampled_from([None, 0, 255]),
    how=st.sampled_from(["memory", "dask", "spooled"]),
)
def test_geotiff_equals_gdals_own_cog_byte_for_byte(
    tmp_path_factory, shape, pattern, georeferenced, nodata, how
):
    """Overviews sampled as the map goes by give the bytes of the COG GDAL makes from the
    whole map with the overviews it builds itself (the sampling rule, the levels' sizes,
    every level from the one before)."""
    tmp = tmp_path_factory.mktemp("cog")
    a, b, c = pattern
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    data = ((y * (2 * a + 1) + x * (2 * b + 1) + c) % 256).astype(
        np.uint8
    )  # every pixel told apart
    grid = scene(*shape, georeferenced=georeferenced)
    source = {
        "memory": lambda: data,
        "dask": lambda: da.from_array(data, chunks=(333, 517)),
        "spooled": lambda: spool(tmp / "s.tif", da.from_array(data, chunks=400), like=grid,
                                 nodata=nodata),
    }[how]()  # fmt: skip
    write_geotiff(tmp / "selo.tif", source, like=grid, nodata=nodata)
    georef = {"crs": UTM, "transform": TRANSFORM} if georeferenced else {}
    reference_cog(tmp / "gdal.tif", data, nodata=nodata, **georef)
    assert (tmp / "selo.tif").read_bytes() == (tmp / "gdal.tif").read_bytes()
    if how == "spooled":
        source.delete()
    assert sorted(p.name for p in tmp.iterdir()) == ["gdal.tif", "selo.tif"]


def test_overview_shapes_are_the_cog_drivers():
    assert overview_shapes((10000, 10000)) == [(5000, 5000), (2500, 2500), (1250, 1250),
                                               (625, 625), (313, 313)]  # fmt: skip
    assert overview_shapes((12345, 777))[-1] == (386, 25)
    assert overview_shapes((512, 300)) == []


@settings(max_examples=60, deadline=None)
@given(
    data=st.integers(1, 40).flatmap(
        lambda h: st.integers(1, 9).flatmap(lambda w: hnp.arrays(np.uint8, (h, w)))
    ),
    picks=st.data(),
    cuts=st.lists(st.integers(1, 15), max_size=8),
)
def test_row_sampler_on_strips_equals_indexing(data, picks, cuts):
    h, w = data.shape
    rows = sorted(picks.draw(st.lists(st.integers(0, h - 1), max_size=12)))
    cols = picks.draw(st.lists(st.integers(0, w - 1), max_size=12))
    sampler, out, top = RowSampler(np.array(rows, int), np.array(cols, int)), [], 0
    for n in [*cuts, h]:
        out.append(sampler.add(top, data[top : top + n]))
        top = min(top + n, h)
    np.testing.assert_array_equal(np.concatenate(out), data[rows][:, cols])


@settings(max_examples=30, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 300), st.integers(1, 80)),
    cuts=st.lists(st.integers(1, 100), max_size=6),
)
def test_png_bytes_do_not_depend_on_how_the_rows_come(tmp_path_factory, shape, cuts):
    tmp = tmp_path_factory.mktemp("png")
    data = selo_map(*shape)
    write_png(tmp / "whole.png", data)
    with png_rows(tmp / "strips.png", shape) as add:
        top = 0
        for n in [*cuts, shape[0]]:
            add(top, data[top : top + n])
            top = min(top + n, shape[0])
    assert (tmp / "strips.png").read_bytes() == (tmp / "whole.png").read_bytes()


def test_fan_out_gives_every_strip_in_order_to_every_sink():
    data = selo_map(1000, 300)
    seen: dict[str, list] = {"a": [], "b": [], "here": []}
    threads: dict[str, set] = {"a": set(), "here": set()}
    import threading

    def sink(name):
        def use(top, strip):
            assert not strip.flags.writeable  # shared by the sinks: read-only
            seen[name].append((top, strip.copy()))
            threads.setdefault(name, set()).add(threading.get_ident())

        return use

    seconds = fan_out(
        da.from_array(data, chunks=(128, 100)), 256, {"a": sink("a"), "b": sink("b")},
        here={"here": sink("here")},
    )  # fmt: skip
    assert set(seconds) == {"a", "b", "here"} and all(s >= 0 for s in seconds.values())
    for name in seen:
        tops = [t for t, _ in seen[name]]
        assert tops == sorted(tops) and tops[0] == 0
        np.testing.assert_array_equal(np.concatenate([s for _, s in seen[name]]), data)
    assert threads["here"] == {threading.get_ident()}  # zarr's sinks: this thread only
    assert threading.get_ident() not in threads["a"]


def test_fan_out_stops_at_a_sinks_error():
    calls = []

    def broken(top, strip):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fan_out(np.zeros((5000, 10), np.uint8), 100, {"bad": broken,
                "ok": lambda top, strip: calls.append(top)})  # fmt: skip
    assert len(calls) < 50  # the pass stopped early


def test_write_side_by_side_times_each_writer_and_raises_the_first_error():
    import time

    seconds = write_side_by_side(
        {"slow": lambda: time.sleep(0.05), "fast": lambda: None}, here={"here": lambda: None}
    )
    assert list(seconds) == ["slow", "fast", "here"] and seconds["slow"] >= 0.05
    with pytest.raises(ValueError, match="bad"):
        write_side_by_side({"bad": lambda: int("bad"), "ok": lambda: None})


def test_spooled_map_feeds_every_writer(tmp_path):
    data = selo_map()
    spooled = spool(tmp_path / "s.tif", da.from_array(data, chunks=64), like=scene())
    np.testing.assert_array_equal(spooled.rows(0, 200), data)
    tif = write_geotiff(tmp_path / "map.tif", spooled, like=scene())
    png = write_png(tmp_path / "map.png", spooled)
    with rasterio.open(tif) as a, rasterio.open(png) as b:
        np.testing.assert_array_equal(a.read(1), data)
        np.testing.assert_array_equal(b.read(1), data)
    np.testing.assert_array_equal(decimate(spooled, (20, 30)), decimate(data, (20, 30)))


def test_spooled_map_samples_as_a_map_in_memory_and_is_deleted_with_its_overviews(tmp_path):
    data = np.tile(selo_map(), (6, 4))  # 1200 x 1200: overviews 600 and 300
    spooled = spool(tmp_path / "s.tif", da.from_array(data, chunks=500), like=scene(1200, 1200))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif", "s.tif.ovr", "s.tif.ovr.ovr"]
    with rasterio.open(spooled.path) as ds:
        assert ds.overviews(1) == [2, 4]
    # the one sampling rule of decimate, not GDAL's reading through the overviews
    np.testing.assert_array_equal(decimate(spooled, (700, 500)), decimate(data, (700, 500)))
    SpooledMap(spooled.path, spooled.shape).delete()
    assert not list(tmp_path.iterdir())


def test_geotiff_of_a_scene_without_georeferencing(tmp_path):
    path = write_geotiff(tmp_path / "map.tif", selo_map(), like=scene(georeferenced=False))
    with rasterio.open(path) as ds:
        assert ds.crs is None
        assert ds.transform == Affine.identity()


def test_geotiff_nodata_mask(tmp_path):
    data = selo_map()
    mask = np.zeros(data.shape, bool)
    mask[:10] = True
    path = write_geotiff(
        tmp_path / "map.tif",
        da.from_array(data, chunks=50),
        like=scene(),
        nodata=0,
        nodata_mask=da.from_array(mask, chunks=70),
    )
    with rasterio.open(path) as ds:
        assert ds.nodata == 0
        written = ds.read(1)
    assert not written[:10].any()
    np.testing.assert_array_equal(written[10:], data[10:])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data": selo_map(10, 10)}, MapError, "shape"),  # not the scene's shape
        ({"data": selo_map().astype(np.float32)}, MapError, "uint8"),
        ({"nodata": 300}, ParameterError, "nodata"),
        ({"nodata_mask": np.zeros((200, 300), bool)}, ParameterError, "nodata value"),
    ],
)
def test_geotiff_bad_arguments(tmp_path, kwargs, error, match):
    arguments = {"data": selo_map(), "like": scene(), **kwargs}
    with pytest.raises(error, match=match):
        write_geotiff(tmp_path / "map.tif", **arguments)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("kind", ["geotiff", "png"])
def test_memory_is_bounded_by_a_chunk_row(tmp_path, kind):
    size, chunk = 8000, 1024
    lazy = da.ones((size, size), dtype=np.uint8, chunks=chunk)

    def write(path, data):
        if kind == "png":
            return write_png(path, data)
        return write_geotiff(path, data, like=scene(*data.shape))

    write(tmp_path / "warm", lazy[:chunk, :chunk])
    tracemalloc.start()  # after one-time set-up costs of the first write in a process
    try:
        path = write(tmp_path / "big", lazy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    row = chunk * size  # 8 MB, the map 64 MB
    assert peak < 2.5 * row  # the row, and its chunks while dask joins them
    with rasterio.open(path) as ds:
        assert ds.read(1, window=((7000, 8000), (7000, 8000))).min() == 1


@pytest.mark.parametrize("lazy", [False, True])
def test_png_is_lossless(tmp_path, lazy):
    data = selo_map(1030, 517)
    source = da.from_array(data, chunks=300) if lazy else data
    path = write_png(tmp_path / "map.png", source)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), data)
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]


def test_overlay_blends_jet_colours_in_rgb_order(tmp_path):
    preview = np.zeros((20, 30, 3), np.uint8)
    heat = np.zeros((20, 30), np.uint8)
    heat[:, 15:] = 255
    path = write_overlay(tmp_path / "overlay.png", preview, heat)
    with rasterio.open(path) as ds:  # rasterio reads PNG bands as R, G, B
        red, green, blue = ds.read().astype(int)
    assert blue[0, 0] > red[0, 0]  # JET starts blue
    assert red[0, -1] > blue[0, -1]  # and ends red
    jet = cv2.applyColorMap(heat, cv2.COLORMAP_JET)[..., ::-1]
    np.testing.assert_allclose(np.stack([red, green, blue], -1), 0.3 * jet, atol=1)


def test_overlay_keeps_the_scene_at_70_percent(tmp_path):
    preview = np.full((8, 8, 3), (200, 100, 0), np.uint8)
    path = write_overlay(tmp_path / "overlay.png", preview, np.full((8, 8), 128, np.uint8))
    jet = cv2.applyColorMap(np.full((1, 1), 128, np.uint8), cv2.COLORMAP_JET)[0, 0, ::-1]
    with rasterio.open(path) as ds:
        np.testing.assert_allclose(ds.read()[:, 0, 0], 0.7 * preview[0, 0] + 0.3 * jet, atol=1)


def test_overlay_shapes_must_agree(tmp_path):
    with pytest.raises(MapError, match="shape"):
        write_overlay(tmp_path / "o.png", np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("lazy", [False, True])
def test_decimate_nearest_samples_pixel_centres(lazy):
    data = selo_map(1000, 700)
    source = da.from_array(data, chunks=128) if lazy else data
    small = decimate(source, (10, 7))
    np.testing.assert_array_equal(small, data[50::100, 50::100])


@pytest.mark.parametrize("lazy", [False, True])
def test_decimate_area_averages_cells(lazy):
    data = np.random.default_rng(0).integers(0, 256, (600, 400)).astype(np.uint8)
    source = da.from_array(data, chunks=(130, 400)) if lazy else data
    small = decimate(source, (60, 40), method="area")
    expected = np.rint(data.reshape(60, 10, 40, 10).mean(axis=(1, 3)))
    np.testing.assert_array_equal(small, expected)


def test_decimate_area_with_uneven_cells():
    data = np.arange(7 * 5, dtype=np.uint8).reshape(7, 5)
    small = decimate(data, (2, 2), method="area")
    # rows 0-3 and 4-6 (floor(i * 2 / 7)), columns 0-2 and 3-4 (floor(j * 2 / 5))
    expected = [
        [data[:4, :3].mean(), data[:4, 3:].mean()],
        [data[4:, :3].mean(), data[4:, 3:].mean()],
    ]
    np.testing.assert_array_equal(small, np.rint(expected))


@pytest.mark.parametrize(
    ("shape", "method"),
    [
        ((300, 10), "nearest"),  # larger than the map
        ((0, 10), "nearest"),  # empty
        ((10, 10), "cubic"),  # unknown method
    ],
)
def test_decimate_bad_arguments(shape, method):
    with pytest.raises(ParameterError):
        decimate(selo_map(), shape, method=method)


def test_pixel_to_crs_gives_pixel_centres():
    xs, ys = pixel_to_crs(scene(), np.array([0, 199]), np.array([0, 299]))
    np.testing.assert_allclose(xs, [500_005, 502_995])
    np.testing.assert_allclose(ys, [3_999_995, 3_998_005])
    xs, ys = pixel_to_crs(scene(georeferenced=False), 3, 7)
    assert (float(xs), float(ys)) == (7.5, 3.5)


def two_regions(height: int = 200, width: int = 300) -> np.ndarray:
    heat = np.zeros((height, width), np.uint8)
    heat[20:60, 40:100] = 200  # 2400 pixels
    heat[31, 51] = 255  # on a pixel that decimation by 2 keeps
    heat[100:110, 200:220] = 250  # 200 pixels
    heat[150, 150] = 240  # a single pixel
    return heat


def test_regions_are_polygons_in_the_scene_crs():
    regions = regions_from_map(two_regions(), scene(), threshold=150, min_pixels=10)
    assert [r["properties"]["max"] for r in regions] == [255, 250]  # strongest first
    first = regions[0]
    assert first["type"] == "Feature" and first["geometry"]["type"] == "Polygon"
    assert first["properties"]["kind"] == "region"
    assert first["properties"]["area_px"] == 2400
    assert first["properties"]["mean"] == pytest.approx((2399 * 200 + 255) / 2400, abs=1e-3)
    xs, ys = np.array(first["geometry"]["coordinates"][0]).T
    assert (xs.min(), xs.max()) == (500_400, 501_000)  # columns 40..100, 10 m pixels
    assert (ys.min(), ys.max()) == (3_999_400, 3_999_800)  # rows 20..60


def test_regions_of_a_decimated_map_are_at_scene_scale():
    full = regions_from_map(two_regions(), scene(), threshold=150, min_pixels=10)
    small = regions_from_map(
        decimate(two_regions(), (100, 150)), scene(), threshold=150, min_pixels=10
    )
    assert [r["geometry"] for r in small] == [r["geometry"] for r in full]
    assert [r["properties"]["area_px"] for r in small] == [2400, 200]


def test_regions_without_georeferencing_are_in_pixels():
    regions = regions_from_map(two_regions(), scene(georeferenced=False), threshold=245)
    xs, ys = np.array(regions[0]["geometry"]["coordinates"][0]).T
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (51, 52, 31, 32)


def test_geojson_names_the_crs(tmp_path):
    regions = regions_from_map(two_regions(), scene(), threshold=150)
    path = write_geojson(tmp_path / "regions.geojson", regions, crs=UTM)
    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection"
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"
    assert len(collection["features"]) == 3


def test_geojson_without_crs_says_pixels(tmp_path):
    path = write_geojson(tmp_path / "regions.geojson", [], crs=None)
    collection = json.loads(path.read_text())
    assert collection["crs"] is None
    assert collection["selo:coordinates"].startswith("pixel")


def write_each(path: Path, kind: str) -> Path:
    """Write a small output of the given kind to ``path``."""
    if kind == "geotiff":
        return write_geotiff(path, selo_map(), like=scene())
    if kind == "png":
        return write_png(path, selo_map())
    if kind == "png-lazy":
        return write_png(path, da.from_array(selo_map(), chunks=64))
    if kind == "overlay":
        return write_overlay(path, np.zeros((20, 30, 3), np.uint8), np.zeros((20, 30), np.uint8))
    return write_geojson(path, [], crs=UTM)


KINDS = ["geotiff", "png", "png-lazy", "overlay", "geojson"]

# Where each writer's bytes go, to make them fail like a full disk.
WRITE_CALLS = {
    "geotiff": (rasterio.io.DatasetWriter, "write"),
    "png": (outputs, "_png_chunk"),
    "png-lazy": (outputs, "_png_chunk"),
    "overlay": (pathlib.Path, "write_bytes"),
    "geojson": (pathlib.Path, "write_bytes"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_write_failure_leaves_nothing_and_names_the_path(tmp_path, monkeypatch, kind, code):
    def fail(*args, **kwargs):
        raise OSError(code, f"simulated {errno.errorcode[code]}")

    monkeypatch.setattr(*WRITE_CALLS[kind], fail)
    with pytest.raises(OutputError, match=r"out\.bin.*simulated") as raised:
        write_each(tmp_path / "out.bin", kind)
    assert isinstance(raised.value, OSError)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("kind", KINDS)
def test_failed_rewrite_keeps_the_previous_file(tmp_path, monkeypatch, kind):
    path = write_each(tmp_path / "out.bin", kind)
    before = path.read_bytes()
    monkeypatch.setattr(*WRITE_CALLS[kind], lambda *a, **k: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OutputError):
        write_each(path, kind)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("kind", KINDS)
def test_output_path_that_is_a_folder(tmp_path, kind):
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        write_each(tmp_path / "out", kind)


@pytest.mark.parametrize("kind", KINDS)
def test_output_folder_that_is_a_file(tmp_path, kind):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"file/out\.bin: cannot create the folder"):
        write_each(tmp_path / "file" / "out.bin", kind)


def test_missing_blocks_after_close_are_an_output_error(tmp_path, monkeypatch):
    """rasterio keeps quiet about blocks GDAL fails to flush on close; we check."""
    monkeypatch.setattr(outputs, "tiff_data_end", lambda ds: 10**12)
    with pytest.raises(OutputError, match="blocks are missing"):
        write_each(tmp_path / "map.tif", "geotiff")
    assert not list(tmp_path.iterdir())
