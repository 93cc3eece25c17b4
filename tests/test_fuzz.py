"""Fuzzing what a user can feed selo: every kind of file it reads, its options, its environment.

Every case runs ``selo`` in this process (:func:`selo.selo_tasks.cli.main`) on a damaged
or extreme input and checks the README's promise (:func:`check`): exit code 0 (the input
is usable) or 2 (a user error), never 1 or a hang (each test has a timeout); no traceback;
at most a few lines on stderr, the last one ``selo: error: ...``; no warning shown (they
are recorded under Python's default warning filters, as a user would see them); and no
half-written file under a final name (temporaries are hidden and removed on failure;
every visible JSON, PNG, GeoTIFF and CSV file must be whole). Where the damaged file is
only a cache (staged copies, embedding entries, the scene-key index, collection indexes,
resume records) the result must not change: the run exits 0 with the clean run's map or metrics.

Inputs come from seeded corruption (truncation at many offsets, single-byte flips in
headers and in data, random bytes, headers that lie about the image size) and from
hypothesis (random JSON structures, extreme numbers, option values and strings, with a
fixed seed), so that every run tries the same cases. ``pytest --fuzz-long`` tries ten
times as many of each.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from bad_inputs import environment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenes import colour_scene, square

from selo.pipeline.scenefile import verify_pixels, verify_png

SHAPE = (192, 256)  # small scenes: a run takes a fraction of a second
SCALES = "96,128"
QUERY = "white roofs"
MAX_STDERR_LINES = 3  # a warning or two (e.g. windows clamped to the scene) and the error
ARCH = "selo-fuzz-vit"


# --- running the CLI and checking the promise ------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str
    warned: list[str]

    def __str__(self) -> str:
        return f"exit {self.code}\nstderr:\n{self.err}\nwarnings: {self.warned}"


def selo(*args, env: dict[str, str | None] | None = None) -> Result:
    """``selo ARGS`` in this process, with Python's default warning filters (what a user
    sees), stdout and stderr captured and warnings recorded."""
    from selo.selo_tasks.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        environment(env or {}),
        warnings.catch_warnings(record=True) as seen,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        warnings.resetwarnings()  # Python's defaults, as `python -m selo` starts with
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning):
            warnings.simplefilter("ignore", category)
        warnings.simplefilter("ignore", ResourceWarning)
        code = main([str(a) for a in args])
    warned = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in seen]
    return Result(code, out.getvalue(), err.getvalue(), warned)


def check(result: Result, *roots: Path, codes: tuple[int, ...] = (0, 2)) -> Result:
    """The README's promise for one run (see the module); ``roots``: folders it wrote."""
    assert result.code in codes, result
    assert "Traceback" not in result.err, result
    lines = result.err.strip().splitlines()
    assert len(lines) <= MAX_STDERR_LINES, result
    if result.code == 2:
        assert lines and lines[-1].startswith("selo: error: "), result
    assert not result.warned, result
    for root in roots:
        nothing_half_written(root)
    return result


def nothing_half_written(root: Path) -> None:
    """No temporary is left, and every visible file under a final name is whole."""
    if not root.exists():
        return
    for p in root.rglob("*"):
        assert ".tmp-" not in p.name and ".old-" not in p.name, f"temporary left behind: {p}"
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".png":
            verify_png(p)
        elif p.suffix in (".tif", ".tiff", ".jpg", ".jpeg"):
            verify_pixels(p)
        elif p.suffix == ".csv":
            assert p.read_text().endswith("\n"), f"{p} is cut short"


def localize(scene: Path, tmp: Path, *extra, cache: Path | None = None, env=None) -> Result:
    """``selo localize`` of ``scene`` into ``tmp/out``, with its own cache, checked."""
    cache = cache or tmp / "cache"
    out = tmp / "out"
    result = selo(
        "localize", scene, "-q", QUERY, "--scales", SCALES, "--out", out, *extra,
        env={"SELO_CACHE_DIR": str(cache), **(env or {})},
    )  # fmt: skip
    return check(result, out, cache)


def long_run(config) -> bool:
    return bool(config.getoption("--fuzz-long"))


def examples(request, n: int) -> int:
    """``n`` hypothesis examples, ten times as many with --fuzz-long."""
    return n * 10 if long_run(request.config) else n


def fuzz_settings(request, n: int):
    return settings(
        max_examples=examples(request, n),
        deadline=None,
        derandomize=True,  # the same examples on every run
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# --- damaging files ----------------------------------------------------------------------------

KINDS = (
    "cut-header",  # truncated inside the header
    "cut-data",  # truncated inside the pixel data
    "flip-header",  # one byte changed in the header
    "flip-data",  # one byte changed in the pixel data
    "random",  # random bytes of the same length
    "lie",  # the header claims a larger image
    "cut-end",  # the last few bytes missing
    "flip-run",  # eight bytes changed in the pixel data
)
CASES_PER_KIND = {False: 1, True: 10}


def pytest_generate_tests(metafunc):
    """``k``: the index of a seeded case; ten times as many with --fuzz-long."""
    if "k" in metafunc.fixturenames:
        n = len(KINDS) * CASES_PER_KIND[long_run(metafunc.config)]
        metafunc.parametrize("k", range(n))


def damage(data: bytes, fmt: str, kind: str, rng: random.Random) -> bytes:
    """``data`` (a file of format ``fmt``) damaged as ``kind`` says, at a place ``rng`` picks."""
    start, end = pixel_data_span(data, fmt)
    b = bytearray(data)
    if kind == "cut-header":
        return data[: rng.randrange(0, start)]
    if kind == "cut-data":
        return data[: rng.randrange(start, end)]
    if kind == "cut-end":
        return data[: len(data) - rng.randrange(1, 17)]
    if kind == "flip-header":
        b[rng.randrange(0, start)] ^= rng.randrange(1, 256)
    elif kind in ("flip-data", "flip-run"):
        at = rng.randrange(start, end - 8)
        for i in range(at, at + (8 if kind == "flip-run" else 1)):
            b[i] ^= rng.randrange(1, 256)
    elif kind == "random":
        return rng.randbytes(len(data))
    elif kind == "lie":
        return lying_header(data, fmt, rng)
    return bytes(b)


def pixel_data_span(data: bytes, fmt: str) -> tuple[int, int]:
    """[start, end) of the compressed pixel data: after it starts, the header is whole."""
    if fmt == "webp":  # RIFF header, then one VP8 chunk
        return 30, len(data)
    if fmt in ("png",):
        starts, ends, at = [], [], 8
        while at + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[at : at + 8])
            if kind == b"IDAT":
                starts.append(at + 8)
                ends.append(at + 8 + length)
            at += 12 + length
        return min(starts), max(ends)
    if fmt in ("jpg",):
        sos = data.index(b"\xff\xda")
        return sos + 2 + struct.unpack(">H", data[sos + 2 : sos + 4])[0], len(data) - 2
    offsets, sizes = tiff_blocks(data)
    return min(offsets), max(o + s for o, s in zip(offsets, sizes, strict=True))


def tiff_tags(data: bytes) -> dict[int, tuple[int, int, int, int]]:
    """Tags of a little-endian classic TIFF's first directory: tag -> (type, count, value
    or offset, position of the value field)."""
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    tags = {}
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind, count, value = struct.unpack_from("<HHII", data, entry)
        tags[tag] = (kind, count, value, entry + 8)
    return tags


def tiff_blocks(data: bytes) -> tuple[list[int], list[int]]:
    tags = tiff_tags(data)

    def values(tag: int) -> list[int]:
        kind, count, value, _ = tags[tag]
        fmt = "<H" if kind == 3 else "<I"
        if count * struct.calcsize(fmt) <= 4:
            return [value & 0xFFFF] if kind == 3 else [value]
        return [struct.unpack_from(fmt, data, value + i * struct.calcsize(fmt))[0] for i in range(count)]  # fmt: skip

    tile = 324 in tags
    return values(324 if tile else 273), values(325 if tile else 279)


def lying_header(data: bytes, fmt: str, rng: random.Random) -> bytes:
    """The same file with a header claiming a larger image than its data holds."""
    width, height = rng.choice([(65535, 65535), (20000, 300), (300, 20000), (1024, 1024)])
    b = bytearray(data)
    if fmt == "webp":  # VP8 (lossy) frame size: 14 bits each after the start code
        struct.pack_into("<HH", b, 26, min(width, 16383), min(height, 16383))
    elif fmt == "png":
        struct.pack_into(">II", b, 16, width, height)
        if rng.random() < 0.5:  # a consistent liar: the IHDR's CRC matches the lie
            struct.pack_into(">I", b, 29, zlib.crc32(bytes(b[12:29])))
    elif fmt == "jpg":
        at = next(i for i in range(len(b) - 1) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC2))
        struct.pack_into(">HH", b, at + 5, min(height, 65535), min(width, 65535))
    else:
        tags = tiff_tags(data)
        for tag, value in ((256, width), (257, height)):
            kind, _, _, where = tags[tag]
            struct.pack_into("<H" if kind == 3 else "<I", b, where, value)
    return bytes(b)


def expected_codes(fmt: str, kind: str) -> tuple[int, ...]:
    """Damage that must be refused (exit 2), and damage a reader may not notice (0 or 2:
    a changed byte of JPEG data or of a GeoTIFF tag can decode to other valid pixels)."""
    if kind in ("cut-header", "cut-data", "random", "lie"):
        return (2,)
    if fmt == "png":  # every chunk has a CRC
        return (2,)
    if kind == "cut-end":
        return (0, 2) if fmt == "jpg" else (2,)  # a JPEG's last bytes are its end marker
    return (0, 2)


def tif_expected(name: str, kind: str) -> tuple[int, ...]:
    if name == "webp" and kind == "cut-end":
        return (0, 2)  # (libwebp may not need the last bytes of a frame)
    return expected_codes(SCENE_FILES[name][1], kind)


# --- base inputs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A scene as GeoTIFF (tiled, deflate), PNG and JPEG; a map as PNG, JPEG and GeoTIFF;
    an annotation file for the map."""
    d = tmp_path_factory.mktemp("fuzz-base")
    rgb = colour_scene(SHAPE)
    profile = dict(driver="GTiff", height=SHAPE[0], width=SHAPE[1], count=3, dtype="uint8")
    profile.update(tiled=True, blockxsize=128, blockysize=128, compress="deflate")
    profile.update(crs="EPSG:32633", transform=rasterio.transform.from_origin(5e5, 46e5, 0.5, 0.5))
    with rasterio.open(d / "scene.tif", "w", **profile) as ds:
        ds.write(np.moveaxis(rgb, -1, 0))
    planar = {**profile, "nodata": 0, "interleave": "band", "compress": "zstd"}
    with rasterio.open(d / "scene-nodata.tif", "w", **planar) as ds:  # one band after another
        ds.write(np.moveaxis(rgb, -1, 0))
    strips = {k: v for k, v in profile.items() if k not in ("tiled", "blockxsize", "blockysize")}
    with rasterio.open(d / "scene-strips.tif", "w", **{**strips, "compress": "lzw"}) as ds:
        ds.write(np.moveaxis(rgb, -1, 0))
    with rasterio.open(d / "scene-raw.tif", "w", **{**profile, "compress": None}) as ds:
        ds.write(np.moveaxis(rgb, -1, 0))
    ycbcr = {**profile, "compress": "jpeg", "photometric": "ycbcr"}
    with rasterio.open(d / "scene-jpeg.tif", "w", **ycbcr) as ds:
        ds.write(np.moveaxis(rgb, -1, 0))
    cv2.imwrite(str(d / "scene.webp"), rgb[..., ::-1], [cv2.IMWRITE_WEBP_QUALITY, 80])
    cv2.imwrite(str(d / "scene.png"), rgb[..., ::-1])
    cv2.imwrite(str(d / "scene.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    selo_map = np.zeros((300, 400), np.uint8)
    cv2.circle(selo_map, (100, 90), 60, 255, -1)
    selo_map = cv2.GaussianBlur(selo_map, (0, 0), 15)
    cv2.imwrite(str(d / "map.png"), selo_map)
    cv2.imwrite(str(d / "map.jpg"), selo_map)
    with rasterio.open(
        d / "map.tif", "w", driver="GTiff", height=300, width=400, count=1, dtype="uint8",
        tiled=True, blockxsize=128, blockysize=128, compress="lzw",
    ) as ds:  # fmt: skip
        ds.write(selo_map[None])
    case = {"caption": "a white roof", "jpg_name": "a.png", "points": [square(50, 40, 100)]}
    (d / "anno.json").write_text(json.dumps([case]))
    return d


# --- scenes ------------------------------------------------------------------------------------


SCENE_FILES = {  # name -> (file, format)
    "tif": ("scene.tif", "tif"),  # tiled, deflate, pixel-interleaved
    "tif-nodata": ("scene-nodata.tif", "tif"),  # tiled, zstd, band-interleaved, nodata 0
    "tif-strips": ("scene-strips.tif", "tif"),  # strips, LZW
    "tif-raw": ("scene-raw.tif", "tif"),  # tiled, uncompressed
    "tif-jpeg": ("scene-jpeg.tif", "tif"),  # tiled, JPEG in YCbCr
    "png": ("scene.png", "png"),
    "jpg": ("scene.jpg", "jpg"),
    "webp": ("scene.webp", "webp"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(SCENE_FILES))
def test_damaged_scene_file(name, k, base, tmp_path):
    file, fmt = SCENE_FILES[name]
    kind = KINDS[k % len(KINDS)]
    rng = random.Random(f"scene-{name}-{k}")
    scene = tmp_path / f"damaged.{fmt}"
    scene.write_bytes(damage((base / file).read_bytes(), fmt, kind, rng))
    # damage found inside Dask tasks: on the threads of this process and on distributed
    extra = ("--in-process",) if kind in ("flip-data", "flip-run") and fmt == "tif" else ()
    result = localize(scene, tmp_path, *extra)
    assert result.code in tif_expected(name, kind), (kind, result)
    if result.code == 2:
        assert "damaged" in result.err or scene.name in result.err, result


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "values",
    [
        (np.float32, 3.4e38, -3.4e38),
        (np.float32, np.inf, -np.inf),
        (np.float64, 1.7e308, -1.7e308),
        (np.float64, np.nan, 1e-310),
        (np.float32, 1.0, 1.0),  # constant
        (np.float64, np.nan, np.nan),  # no data at all: exit 2
        (np.int16, -32768, 32767),
    ],
    ids=str,
)
def test_extreme_pixel_values_run_quietly(values, tmp_path):
    from scenes import write_geotiff_scene

    dtype, a, b = values
    img = colour_scene(SHAPE).astype(dtype)
    img[: SHAPE[0] // 2] = a
    img[SHAPE[0] // 2 :, :50] = b
    result = localize(write_geotiff_scene(tmp_path / "x.tif", img), tmp_path)
    assert result.code == 0 or "nodata" in result.err, result


extremes = st.sampled_from(
    [0.0, -0.0, 1e-310, -1e-310, 1.0, -1.0, 3.4e38, -3.4e38, 1.7e308, -1.7e308, np.inf, -np.inf,
     np.nan, 1e300, -1e300, 65504.0]
)  # fmt: skip


@pytest.mark.timeout(120)
def test_random_extreme_float_scenes(request, tmp_path):
    from scenes import write_geotiff_scene

    @fuzz_settings(request, 12)
    @given(
        values=st.lists(extremes, min_size=1, max_size=6),
        dtype=st.sampled_from([np.float32, np.float64]),
        seed=st.integers(0, 2**16),
    )
    def run(values, dtype, seed):
        rng = np.random.default_rng(seed)
        img = colour_scene((64, 96)).astype(dtype)
        with np.errstate(over="ignore"):  # float32 cannot hold every value: inf then
            picks = np.asarray(values, dtype=np.float64)[rng.integers(0, len(values), img.shape)]
            img = np.where(rng.random(img.shape) < 0.7, picks.astype(dtype), img)
        work = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
        work.mkdir()
        result = localize(write_geotiff_scene(work / "x.tif", img), work)
        assert result.code == 0 or "nodata" in result.err, result

    run()


# --- cached files: damage never changes the result ------------------------------------------


@pytest.fixture(scope="module")
def cached_run(base, tmp_path_factory) -> tuple[Path, bytes]:
    """A clean run of the PNG scene: (its cache, its selo_map.png)."""
    d = tmp_path_factory.mktemp("fuzz-cached")
    result = localize(base / "scene.png", d, cache=d / "cache")
    assert result.code == 0, result
    (out,) = (d / "out").glob("q01-*")
    return d / "cache", (out / "selo_map.png").read_bytes()


def rerun_with(
    base: Path, cache: Path, tmp: Path, expected_map: bytes, damaged: Path | None = None
):
    """Run again on the damaged cache: the same map. (A damaged file selo never needed
    to read, and so left as it was, is not one it half-wrote: set aside for the check.)"""
    content = damaged.read_bytes() if damaged is not None and damaged.is_file() else None
    result = selo(
        "localize", base / "scene.png", "-q", QUERY, "--scales", SCALES, "--out", tmp / "out",
        env={"SELO_CACHE_DIR": str(cache)},
    )  # fmt: skip
    if content is not None and damaged.is_file() and damaged.read_bytes() == content:
        damaged.unlink()
    check(result, tmp / "out", cache)
    assert result.code == 0, result
    (out,) = (tmp / "out").glob("q01-*")
    assert (out / "selo_map.png").read_bytes() == expected_map, "damage changed the map"


def damage_file(target: Path, rng: random.Random) -> str:
    """``target`` damaged in one of the ways a store's file can be: a flipped byte, cut in
    half, replaced by junk, deleted, or an empty JSON object; returns which."""
    data = target.read_bytes()
    how = rng.choice(["flip", "cut", "junk", "delete", "empty-json"])
    if how == "flip" and data:
        b = bytearray(data)
        b[rng.randrange(len(b))] ^= rng.randrange(1, 256)
        target.write_bytes(bytes(b))
    elif how == "cut":
        target.write_bytes(data[: len(data) // 2])
    elif how == "junk":
        target.write_bytes(rng.randbytes(max(1, len(data))))
    elif how == "delete":
        target.unlink()
    else:
        target.write_text("{}")
    return how


def _fresh_cache(cached_run, tmp: Path) -> Path:
    cache = tmp / "cache"
    shutil.copytree(cached_run[0], cache)
    return cache


@pytest.mark.timeout(60)
def test_damaged_staged_copy_is_made_again(k, base, cached_run, tmp_path):
    cache = _fresh_cache(cached_run, tmp_path)
    (staged,) = (cache / "staged").glob("*.tif")
    rng = random.Random(f"staged-{k}")
    kind = KINDS[k % len(KINDS)]
    if kind == "lie":  # something else than a file under its name
        staged.unlink()
        staged.mkdir()
        (staged / "x").write_text("x")
    else:
        staged.write_bytes(damage(staged.read_bytes(), "tif", kind, rng))
    rerun_with(base, cache, tmp_path, cached_run[1])


@pytest.mark.timeout(60)
def test_damaged_embedding_entry_is_computed_again(k, base, cached_run, tmp_path):
    cache = _fresh_cache(cached_run, tmp_path)
    files = sorted(p for p in (cache / "embeddings.zarr").rglob("*") if p.is_file())
    rng = random.Random(f"embeddings-{k}")
    target = files[k % len(files)]
    damage_file(target, rng)
    rerun_with(base, cache, tmp_path, cached_run[1], damaged=target)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "content",
    ["", "[]", "null", "{not json", "[" * 100_000, '{"x": ' + "9" * 5000 + "}", "WRONG-KEY"],
)
def test_damaged_scene_key_index_is_rebuilt(content, base, cached_run, tmp_path):
    cache = _fresh_cache(cached_run, tmp_path)
    index = cache / "scene-keys.json"
    if content == "WRONG-KEY":  # a key that points at another scene's (missing) entries
        data = json.loads(index.read_text())
        for entry in data.values():
            if "sha256" in entry:
                entry["sha256"] = "0" * 64
        content = json.dumps(data)
    index.write_text(content)
    rerun_with(base, cache, tmp_path, cached_run[1])


# --- collections (selo search) ----------------------------------------------------------------

ENTRIES = ("tif", "png", "damaged", "missing", "text", "twice", "copy", "empty-folder", "nodata")


def search(items, tmp: Path, *extra, cache: Path | None = None) -> Result:
    """``selo search`` of ``items`` into ``tmp/out``, with its own cache, checked."""
    cache = cache or tmp / "cache"
    result = selo(
        "search", *items, "-q", QUERY, "--scales", SCALES, "--top", "5", "--out", tmp / "out",
        *extra, env={"SELO_CACHE_DIR": str(cache)},
    )  # fmt: skip
    check(result, tmp / "out", cache)
    if result.code == 0:
        assert json.loads((tmp / "out" / "run.json").read_text())["status"] == "complete"
        json.loads((tmp / "out" / "hits.geojson").read_text())
    return result


@pytest.mark.timeout(300)
def test_random_collections(request, base, tmp_path):
    """Collections of good, damaged, missing, repeated, copied, empty and nodata entries:
    exit 2 when a scene cannot be searched (0 with --skip-bad while a good scene is left),
    never 1, nothing half-written."""
    from scenes import write_geotiff_scene

    @fuzz_settings(request, 8)
    @given(
        entries=st.lists(st.sampled_from(ENTRIES), max_size=5),
        skip=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def run(entries, skip, seed):
        work = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
        work.mkdir()
        rng = random.Random(seed)
        items: list[Path] = []
        good = bad = unknown = 0
        for n, kind in enumerate(entries):
            path = work / f"e{n}.tif"
            if kind in ("tif", "png"):
                rgb = colour_scene((96, 128), seed=seed + n)
                if kind == "tif":
                    write_geotiff_scene(path, rgb)
                else:
                    path = path.with_suffix(".png")
                    cv2.imwrite(str(path), rgb[..., ::-1])
                good += 1
            elif kind == "damaged":
                data = (base / "scene.tif").read_bytes()
                path.write_bytes(damage(data, "tif", rng.choice(KINDS), rng))
                unknown += 1
            elif kind == "text":
                path.write_text("not a raster")
                bad += 1
            elif kind in ("twice", "copy") and items and items[-1].is_file():
                if kind == "twice":
                    path = items[-1]
                else:
                    path.write_bytes(items[-1].read_bytes())
                bad += 1
            elif kind == "empty-folder":
                path = work / f"folder{n}"
                path.mkdir()
            elif kind == "nodata":
                write_geotiff_scene(path, np.zeros((96, 128, 3), np.uint8), nodata=0)
                bad += 1
            else:  # missing (or nothing to repeat)
                bad += 1
            items.append(path)
        result = search(items, work, *(["--skip-bad"] if skip else []))
        if good == 0 and unknown == 0 or bad and not skip:
            assert result.code == 2, (entries, skip, result)
        elif good and skip:
            assert result.code == 0, (entries, skip, result)
        if result.code == 2:
            assert "scene" in result.err.lower() or "nodata" in result.err, result

    run()


@pytest.fixture(scope="module")
def searched_collection(base, tmp_path_factory) -> tuple[Path, list[Path], list]:
    """A clean int8 search of three scenes: (its cache, the scenes, its hits)."""
    from scenes import write_geotiff_scene

    d = tmp_path_factory.mktemp("fuzz-search")
    scenes = [base / "scene.tif", base / "scene.png"]
    scenes.append(write_geotiff_scene(d / "third.tif", colour_scene(SHAPE, seed=7)))
    result = search(scenes, d, "--index", "int8", cache=d / "cache")
    assert result.code == 0, result
    return d / "cache", scenes, _hits(d / "out")


def _hits(out: Path) -> list:
    data = json.loads((out / "hits.geojson").read_text())
    return [(f["properties"]["scene"], f["properties"]["rank"], f["properties"]["score"])
            for f in data["features"]]  # fmt: skip


@pytest.mark.timeout(60)
def test_damaged_collection_index_is_built_again(k, searched_collection, tmp_path):
    cache, scenes, expected = searched_collection
    fresh = tmp_path / "cache"
    shutil.copytree(cache, fresh)
    files = sorted(p for p in (fresh / "indexes").rglob("*") if p.is_file())
    rng = random.Random(f"index-{k}")
    target = files[k % len(files)]
    how = damage_file(target, rng)
    result = search(scenes, tmp_path, "--index", "int8", cache=fresh)
    assert result.code == 0, (target.name, how, result)
    got = _hits(tmp_path / "out")
    assert [h[:2] for h in got] == [h[:2] for h in expected], (target.name, how)
    assert np.allclose([h[2] for h in got], [h[2] for h in expected], atol=1e-6)


# --- annotations -------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e300, -1e300, 2**31, -(2**31), 2**31 - 1, 10**400, 0, -0.0, 1e-300]),
    st.integers(-60, 460),
)
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["a.png", "", " ", "../a.png", "/a.png", "C:a.png", "a" * 300 + ".png", "\ud800",
         "x\udcffy", "a.png\n", "a\x00.png", "é.png", "."]
    ),
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=16,
)
plausible_polygon = st.lists(  # points around the 400x300 map, partly outside
    st.tuples(st.integers(-60, 460), st.integers(-60, 360)).map(list), min_size=3, max_size=6
)
extreme_polygon = st.lists(st.lists(numbers, min_size=2, max_size=2), min_size=3, max_size=5)


def mostly(usual, *others):
    """``usual`` three times in four, else one of ``others`` (so that many documents get
    as far as the metrics, and the rest fail at every step on the way)."""
    other = st.one_of(*others)
    return st.integers(0, 3).flatmap(lambda i: usual if i else other)


polygons = st.lists(
    mostly(plausible_polygon, extreme_polygon, st.lists(json_values, max_size=4)),
    min_size=1,
    max_size=3,
)
cases = st.fixed_dictionaries(
    {
        "caption": mostly(st.just("a white roof"), texts, json_values),
        "jpg_name": mostly(st.just("a.png"), texts),
        "points": mostly(polygons, json_values),
    }
)
annotation_documents = mostly(st.lists(cases, min_size=1, max_size=3), json_values)


@pytest.fixture(scope="module")
def maps_dir(base, tmp_path_factory) -> Path:
    """A maps folder with a usable map for cases 0 to 2."""
    d = tmp_path_factory.mktemp("fuzz-maps")
    for i in range(3):
        shutil.copy(base / "map.png", d / f"probmap_{i}.png")
    return d


def evaluate(anno: Path, maps: Path, out: Path) -> Result:
    return check(selo("eval", "--anno", anno, "--maps", maps, "--out", out / "metrics.csv"), out)


@pytest.mark.timeout(120)
def test_random_annotation_files(request, maps_dir, tmp_path):
    @fuzz_settings(request, 120)
    @given(document=annotation_documents)
    def run(document):
        anno = tmp_path / "anno.json"
        anno.write_text(json.dumps(document))
        evaluate(anno, maps_dir, tmp_path / "out")

    run()


@pytest.mark.timeout(180)
def test_random_annotation_records_of_a_run(request, run_folder, tmp_path):
    """A run folder's run.json names its annotation file (which eval and serve use): any
    ``annotations`` entry there, with or without --anno, scores the maps or is one line."""
    run = tmp_path / "run"
    shutil.copytree(run_folder / "run", run)
    record = json.loads((run / "run.json").read_text())
    usual = st.fixed_dictionaries(
        {
            "file": mostly(
                st.just(str(run_folder / "anno.json")),
                st.just("x" * 5000),  # a name the file system refuses
                st.just(str(tmp_path)),  # a folder
                texts,
                json_values,
            ),
            "digest": mostly(st.just(record["annotations"]["digest"]), texts, json_values),
        }
    )
    anno = st.sampled_from([None, run_folder / "anno.json", run / "run.json"])

    @fuzz_settings(request, 60)
    @given(entry=mostly(usual, json_values), given_anno=anno)
    def run_eval(entry, given_anno):
        (run / "run.json").write_text(json.dumps({**record, "annotations": entry}))
        args = ["eval", "--maps", run, "--out", tmp_path / "out" / "m.csv"]
        check(selo(*args, *(["--anno", given_anno] if given_anno else [])), tmp_path / "out")

    run_eval()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than the parser's recursion
        b'[{"caption": "x", "jpg_name": "a.png", "points": [[[' + b"9" * 5000 + b", 0]]]}]",
        b'[{"caption": "x", "jpg_name": "a.png", "points": [[[1e300, 0], [0, 1e300], [5, 5]]]}]',
        b'[{"caption": "\\ud800", "jpg_name": "a.png", "points": [[[0, 0], [99, 0], [99, 99]]]}]',
        b'[{"caption": "x", "jpg_name": "' + b"a" * 300 + b'.png", "points": [[[0, 0], [9, 0], [9, 9]]]}]',
        b'[{"caption": "x", "jpg_name": "a.png", "points": [[[-90, 50], [50, -90], [-90, -90]]]}]',
        b"\xff\xfe[\x00]\x00",  # UTF-16
        b"\xef\xbb\xbf[]",  # UTF-8 with a byte-order mark
        b'[{"caption": "x", "jpg_name": "a.png", "points": [[[NaN, 0], [9, 0], [9, 9]]]}]',
    ],
    ids=[
        "deep", "huge-int", "1e300", "surrogate", "long-name", "box-overlaps-fills-nothing",
        "utf16", "bom", "nan",
    ],
)  # fmt: skip
def test_hostile_annotation_files(raw, maps_dir, tmp_path):
    anno = tmp_path / "anno.json"
    anno.write_bytes(raw)
    result = evaluate(anno, maps_dir, tmp_path / "out")
    assert result.code == 2, result
    assert "anno.json" in result.err or "case 0" in result.err, result


@pytest.mark.timeout(60)
def test_polygon_fill_check_equals_the_published_mask(request):
    """:func:`validate_polygons` decides "fills no pixel" on the polygons' box only; it must
    agree with the full-map mask the metrics use (one fillPoly call, int32 points)."""
    from selo.selo_tasks.metrics import _fills_a_pixel, gt_mask

    point = st.tuples(st.floats(-40, 80), st.floats(-40, 80))
    polygons = st.lists(st.lists(point, min_size=3, max_size=6), min_size=1, max_size=3)

    @fuzz_settings(request, 300)
    @given(polys=polygons, h=st.integers(1, 40), w=st.integers(1, 40))
    def run(polys, h, w):
        arrays = [np.asarray(p, dtype=np.float64) for p in polys]
        assert _fills_a_pixel(arrays, (h, w)) == bool(gt_mask((h, w), arrays).any())

    run()


# --- maps ----------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", ["png", "jpg", "tif"])
def test_damaged_map_file(fmt, k, base, tmp_path):
    kind = KINDS[k % len(KINDS)]
    rng = random.Random(f"map-{fmt}-{k}")
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / f"probmap_0.{fmt}").write_bytes(
        damage((base / f"map.{fmt}").read_bytes(), fmt, kind, rng)
    )
    result = evaluate(base / "anno.json", maps, tmp_path / "out")
    assert result.code in expected_codes(fmt, kind), (kind, result)
    if result.code == 2:
        assert "case 0" in result.err, result


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["png", "jpg", "tif"])
def test_damaged_scene_image_for_eval(name, k, base, tmp_path):
    """``selo eval --images``: the scene is only read for its size, through the same checks."""
    file, fmt = SCENE_FILES[name]
    kind = KINDS[k % len(KINDS)]
    images = tmp_path / "images"
    images.mkdir()
    data = damage((base / file).read_bytes(), fmt, kind, random.Random(f"eval-image-{name}-{k}"))
    (images / "a.png").write_bytes(data)
    maps = tmp_path / "maps"
    maps.mkdir()
    cv2.imwrite(str(maps / "probmap_0.png"), np.zeros(SHAPE, np.uint8))
    anno = tmp_path / "anno.json"
    anno.write_text(
        json.dumps([{"caption": "x", "jpg_name": "a.png", "points": [square(9, 9, 50)]}])
    )
    out = tmp_path / "out"
    check(
        selo("eval", "--anno", anno, "--maps", maps, "--images", images, "--out", out / "m.csv"),
        out,
    )


# --- checkpoints -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    """A tiny open_clip architecture's weights as .pt (zip), legacy .pt and .safetensors."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    from safetensors.torch import save_file
    from tiny_clip import TINY_VIT, register_arch

    from selo.models.openclip import build_model

    d = tmp_path_factory.mktemp("fuzz-ckpt")
    register_arch(d, ARCH, TINY_VIT)
    torch.manual_seed(0)
    state = build_model(ARCH).state_dict()
    torch.save(state, d / "weights.pt")
    torch.save(state, d / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, d / "weights.safetensors")
    return d


def checkpoint_run(base: Path, checkpoint: Path, tmp: Path, model=f"openclip:{ARCH}") -> Result:
    return localize(base / "scene.tif", tmp, "--model", model, "--checkpoint", checkpoint)


CHECKPOINT_KINDS = ("cut-header", "cut-data", "flip-header", "flip-data", "random", "cut-end")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
@pytest.mark.parametrize("name", ["weights.pt", "legacy.pt", "weights.safetensors"])
def test_damaged_checkpoint(name, kind, checkpoints, base, tmp_path, request):
    data = (checkpoints / name).read_bytes()
    header = 1024 if name.endswith(".pt") else 8 + struct.unpack("<Q", data[:8])[0]
    seeds = range(10 if long_run(request.config) else 1)
    for seed in seeds:
        rng = random.Random(f"{name}-{kind}-{seed}")
        b = bytearray(data)
        if kind == "cut-header":
            b = b[: rng.randrange(0, header)]
        elif kind == "cut-data":
            b = b[: rng.randrange(header, len(data))]
        elif kind == "cut-end":
            b = b[: len(data) - rng.randrange(1, 64)]
        elif kind == "random":
            b = bytearray(rng.randbytes(len(data)))
        else:
            lo, hi = (0, header) if kind == "flip-header" else (header, len(data))
            b[rng.randrange(lo, hi)] ^= rng.randrange(1, 256)
        damaged = tmp_path / f"{seed}-{name}"
        damaged.write_bytes(bytes(b))
        result = checkpoint_run(base, damaged, tmp_path / str(seed))
        if kind.startswith("flip"):
            continue  # a changed weight can be a valid weight: 0 or 2
        assert result.code == 2 and damaged.name in result.err, result


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", ["nan", "inf", "wrapped", "list", "empty", "scalar", "strings"])
def test_checkpoint_contents(bad, checkpoints, base, tmp_path):
    import torch

    state = torch.load(checkpoints / "weights.pt", weights_only=True)
    key = next(iter(state))
    content = {
        "nan": {**state, key: torch.full_like(state[key], float("nan"))},
        "inf": {**state, key: state[key].clone().fill_(float("inf"))},
        "wrapped": {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3},
        "list": list(state.values()),
        "empty": {},
        "scalar": 5,
        "strings": {"a": "b"},
    }[bad]
    path = tmp_path / "ckpt.pt"
    torch.save(content, path)
    result = checkpoint_run(base, path, tmp_path)
    if bad == "wrapped":
        assert result.code == 0, result
    else:
        assert result.code == 2 and "ckpt.pt" in result.err, result
    if bad in ("nan", "inf"):
        assert "NaN or infinite" in result.err, result


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["random", "cut", "text"])
def test_damaged_amfmn_checkpoint(kind, base, tmp_path):
    path = tmp_path / "amfmn.pth"
    rng = random.Random(kind)
    path.write_bytes({"random": rng.randbytes(5000), "cut": b"PK\x03\x04" + rng.randbytes(100), "text": b"hello"}[kind])  # fmt: skip
    result = checkpoint_run(base, path, tmp_path, model="amfmn-rsitmd")
    assert result.code == 2 and "amfmn.pth" in result.err, result


@pytest.mark.timeout(120)
def test_random_amfmn_vocabularies(request, checkpoints, base, tmp_path):
    """An ``amfmn:<vocab.json>`` spec names a JSON file selo reads before anything else."""
    vocabularies = st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"word2idx": st.dictionaries(texts, numbers | json_values, max_size=5)}
        ),
    )

    @fuzz_settings(request, 15)
    @given(vocabulary=vocabularies)
    def run(vocabulary):
        work = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
        work.mkdir()
        (work / "vocab.json").write_text(json.dumps(vocabulary))
        checkpoint_run(base, checkpoints / "weights.pt", work, model=f"amfmn:{work / 'vocab.json'}")

    run()


# --- Hugging Face folders ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from tiny_clip import make_hf_clip_dir

    return make_hf_clip_dir(tmp_path_factory.mktemp("fuzz-hf") / "model")


def hf_run(hf_dir: Path, base: Path, tmp: Path, change) -> Result:
    folder = tmp / "model"
    shutil.copytree(hf_dir, folder)
    change(folder)
    return localize(base / "scene.tif", tmp, "--model", f"hf-clip:{folder}")


def _set(file: str, text: str | bytes):
    def change(folder: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (folder / file).write_bytes(data)

    return change


def _config(path: str, value):
    """Set ``path`` ("text_config.hidden_size") in config.json to ``value``."""

    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        *parents, last = path.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[last] = value
        (folder / "config.json").write_text(json.dumps(config))

    return change


def _damage_weights(kind: str):
    def change(folder: Path) -> None:
        path = folder / "model.safetensors"
        data = bytearray(path.read_bytes())
        header = 8 + struct.unpack("<Q", bytes(data[:8]))[0]
        rng = random.Random(kind)
        if kind == "cut":
            data = data[: len(data) // 2]
        elif kind == "junk":
            data = bytearray(rng.randbytes(len(data)))
        elif kind == "flip-header":
            data[rng.randrange(8, header)] ^= 0x20
        elif kind == "flip-data":
            for _ in range(8):
                data[rng.randrange(header, len(data))] ^= 0xFF
        path.write_bytes(bytes(data))

    return change


HF_CHANGES = {
    "config-list": _set("config.json", "[]"),
    "config-null": _set("config.json", "null"),
    "config-empty-object": _set("config.json", "{}"),
    "config-defaults": _set("config.json", '{"model_type": "clip"}'),
    "config-deep": _set("config.json", "[" * 100_000),
    "config-huge-int": _set("config.json", '{"model_type": "clip", "x": ' + "1" * 5000 + "}"),
    "hidden-size-1e12": _config("text_config.hidden_size", 10**12),
    "hidden-size-negative": _config("text_config.hidden_size", -1),
    "hidden-size-float": _config("vision_config.hidden_size", 64.5),
    "hidden-size-string": _config("vision_config.hidden_size", "64"),
    "hidden-size-large": _config("text_config.hidden_size", 16384),
    "layers-512": _config("vision_config.num_hidden_layers", 512),
    "image-size-4096": _config("vision_config.image_size", 4096),
    "patch-size-0": _config("vision_config.patch_size", 0),
    "projection-1e9": _config("projection_dim", 10**9),
    "text-config-list": _config("text_config", [1, 2]),
    "weights-cut": _damage_weights("cut"),
    "weights-junk": _damage_weights("junk"),
    "weights-flip-header": _damage_weights("flip-header"),
    "weights-flip-data": _damage_weights("flip-data"),
    "vocab-junk": _set("vocab.json", b"\x00\xff junk"),
    "merges-junk": _set("merges.txt", b"\xff\xfe\x00"),
    "tokenizer-config-list": _set("tokenizer_config.json", "[]"),
    "preprocessor-list": _set("preprocessor_config.json", "[]"),
    "preprocessor-size": _set("preprocessor_config.json", '{"size": -1}'),
    "preprocessor-crop": _set("preprocessor_config.json", '{"crop_size": {"height": 1000000000}}'),
    "preprocessor-mean": _set("preprocessor_config.json", '{"image_mean": [1, 2]}'),
    "preprocessor-std": _set("preprocessor_config.json", '{"image_std": [0, 1, 1]}'),
    "preprocessor-resample": _set("preprocessor_config.json", '{"resample": [1]}'),
}
MAY_WORK = {
    "weights-flip-data",
    "weights-flip-header",
    "merges-junk",
}  # changes a valid file can survive


@pytest.mark.timeout(90)
@pytest.mark.parametrize("change", list(HF_CHANGES))
def test_damaged_hf_folder(change, hf_dir, base, tmp_path):
    result = hf_run(hf_dir, base, tmp_path, HF_CHANGES[change])
    assert result.code in ((0, 2) if change in MAY_WORK else (2,)), result


@pytest.mark.timeout(180)
def test_random_hf_configs(request, hf_dir, base, tmp_path):
    keys = st.sampled_from(
        ["projection_dim", "text_config", "vision_config", "model_type", "logit_scale_init_value"]
    )

    @fuzz_settings(request, 10)
    @given(changes=st.dictionaries(keys, json_values, min_size=1, max_size=3))
    def run(changes):
        def change(folder: Path) -> None:
            config = json.loads((folder / "config.json").read_text())
            config.update(changes)
            (folder / "config.json").write_text(json.dumps(config))

        work = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
        hf_run(hf_dir, base, work, change)

    run()


# --- resume records ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airslt_run(base, tmp_path_factory):
    """A finished three-case AIR-SLT run over two small scenes: (images, anno, run folder,
    cache, metrics.csv)."""
    d = tmp_path_factory.mktemp("fuzz-airslt")
    images = d / "images"
    images.mkdir()
    shutil.copy(base / "scene.png", images / "a.png")
    cv2.imwrite(str(images / "b.png"), colour_scene(SHAPE, seed=1)[..., ::-1])
    cases = [
        {"caption": "white roofs", "jpg_name": "a.png", "points": [square(30, 20, 60)]},
        {"caption": "green fields", "jpg_name": "a.png", "points": [square(130, 100, 60)]},
        {"caption": "white roofs", "jpg_name": "b.png", "points": [square(30, 20, 60)]},
    ]
    (d / "anno.json").write_text(json.dumps(cases))
    result = airslt(images, d / "anno.json", d / "run", d / "cache")
    assert result.code == 0, result
    return images, d / "anno.json", d / "run", d / "cache", (d / "run" / "metrics.csv").read_text()


def airslt(images: Path, anno: Path, out: Path, cache: Path, *extra) -> Result:
    result = selo(
        "airslt", "--images", images, "--anno", anno, "--out", out, "--scales", SCALES,
        "--in-process", "--no-profile", *extra, env={"SELO_CACHE_DIR": str(cache)},
    )  # fmt: skip
    return check(result, out, cache)


def _record(text: str):
    def change(case: Path) -> None:
        (case / "metrics.json").write_text(text)

    return change


def _edit_record(edit):
    def change(case: Path) -> None:
        record = json.loads((case / "metrics.json").read_text())
        edit(record)
        (case / "metrics.json").write_text(json.dumps(record))

    return change


def _folder_instead(case: Path) -> None:
    (case / "metrics.json").unlink()
    (case / "metrics.json").mkdir()


RECORD_CHANGES = {
    "list": _record("[]"),
    "null": _record("null"),
    "empty": _record(""),
    "random": lambda case: (case / "metrics.json").write_bytes(random.Random(1).randbytes(300)),
    "cut": lambda case: (case / "metrics.json").write_text(
        (case / "metrics.json").read_text()[:40]
    ),
    "deep": _record("[" * 100_000),
    "nan": _edit_record(lambda r: r["metrics"].update(rsu=float("nan"))),
    "bool": _edit_record(lambda r: r["metrics"].update(rda=True)),
    "string": _edit_record(lambda r: r["metrics"].update(rmi="0.5")),
    "metrics-list": _edit_record(lambda r: r.update(metrics=[1, 2, 3, 4])),
    "huge": lambda case: (case / "metrics.json").write_text(
        (case / "metrics.json")
        .read_text()
        .replace('"rsu": ', '"rsu": 1' + "0" * 400 + ', "x": ', 1)
    ),
    "other-case": _edit_record(lambda r: r.update(case=True)),
    "folder": _folder_instead,
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("change", list(RECORD_CHANGES))
def test_damaged_resume_record_is_computed_again(change, airslt_run, tmp_path):
    images, anno, run, cache, metrics = airslt_run
    out, own_cache = tmp_path / "run", tmp_path / "cache"
    shutil.copytree(run, out)
    shutil.copytree(cache, own_cache)
    RECORD_CHANGES[change](out / "case_00")
    result = airslt(images, anno, out, own_cache, "--resume")
    if change == "folder":  # a folder where the record goes: said, not removed
        assert result.code == 2 and "metrics.json: is a folder" in result.err, result
        return
    assert result.code == 0 and not result.err, result
    assert (out / "metrics.csv").read_text() == metrics, "a damaged record changed the metrics"


# --- options and environment -------------------------------------------------------------------

BAD_ADDRESSES = [
    "tcp://[::1", "tcp://h:99999", "tcp://", "foo://x", "tcp://h:x", "tcp://a b:1", "tcp://h:0",
    "tcp://\ud800:1", "tcp://h:1/path", "tcp://user@h:1", "://h", "tcp:///", "tcp://h:-1",
    "tcp://[::1]:70000", "inproc://", "ws://", "TCP://",
]  # fmt: skip
BAD_PATHS = ["", " ", "nul\x00byte", "\ud800", "bad\udcff", "~selo-no-such-user/x", "x" * 300]

weird = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        ["1e20", "1e21", "-1", "0", "nan", "inf", "9" * 25, " ", "0x10", "1_000", "1,2", "\ud800"]
    ),
)


def _ints(lo: int, hi: int):
    return st.integers(lo, hi).map(str)


option_values = {
    "--scales": st.one_of(
        weird,
        _ints(-(10**25), 10**25),
        st.lists(st.integers(32, 600), min_size=1, max_size=3).map(lambda v: ",".join(map(str, v))),
    ),
    "--chunk": st.one_of(weird, _ints(-(10**25), 10**25), _ints(256, 4096)),
    "--batch": st.one_of(weird, _ints(-(10**6), 10**6), _ints(1, 64)),
    "--method": st.sampled_from(["v1", "v2", "v3", ""]),
    "--seed": st.one_of(weird, _ints(-(2**70), 2**70)),
    "--workers": st.one_of(weird, st.sampled_from(["0", "-1", "100000"])),  # (valid ones start processes)
    "--threads": st.one_of(weird, _ints(-5, 300)),
    "--scheduler": st.one_of(
        st.text(max_size=10).filter(lambda s: "://" not in s), st.just("notaurl"),
        st.sampled_from(BAD_ADDRESSES),
        # an unclosed IPv6 bracket, or a scheme distributed does not have: never reachable
        st.text(max_size=8).filter(lambda s: "]" not in s).map(lambda s: "tcp://[" + s),
        st.text(max_size=8).map(lambda s: "nosuchcomm://" + s),
    ),
    "--bands": st.one_of(weird, st.sampled_from(["1,2,3", "3,2,1", "1,1,1", "0,1,2", "1,2,4", "1,2"])),
    "--device": st.sampled_from(["cpu", "auto", "cuda:99", "tpu", "", "cpu:0", "cuda"]),
    "--precision": st.sampled_from(["fp32", "bf16", "fp16", "int8", "fp8"]),
    "--model": st.sampled_from(["color", "colour", "openclip:", "hf-clip:/nowhere", ":", "", "color:x", "amfmn:", "openclip:ViT-Z-99", "longclip:x", "\ud800"]),
    "--cache-dir": st.one_of(st.sampled_from(BAD_PATHS), st.text(max_size=12)),
    "--checkpoint": st.one_of(st.sampled_from(BAD_PATHS), st.text(max_size=12)),
    "--out": st.sampled_from(BAD_PATHS),
}  # fmt: skip
switches = st.lists(
    st.sampled_from(["--gpu", "--profile", "--no-profile", "--in-process", "--paper-compat"]),
    max_size=3,
    unique=True,
)
queries = st.one_of(
    st.just(QUERY),
    st.text(max_size=30),
    st.sampled_from(["\ud800 roofs", "a " * 3000, "\n", "white\x00roofs", "-q", "--out"]),
)


@pytest.mark.timeout(240)
def test_random_options(request, base, tmp_path):
    @fuzz_settings(request, 60)
    @given(
        options=st.dictionaries(
            st.sampled_from(list(option_values)), st.none(), max_size=4
        ).flatmap(lambda keys: st.fixed_dictionaries({k: option_values[k] for k in keys})),
        query=queries,
        flags=switches,
    )
    def run(options, query, flags):
        work = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
        work.mkdir()
        out, cache = work / "out", work / "cache"
        options = {"--out": str(out), **options}
        args = [a for kv in options.items() for a in kv] + flags
        if "--scales" not in options:
            args += ["--scales", SCALES]
        with contextlib.chdir(work):  # relative paths (and profile.html) stay in the example
            result = selo(
                "localize", base / "scene.tif", "-q", query, *args,
                env={"SELO_CACHE_DIR": str(cache)},
            )  # fmt: skip
        check(result, work)

    run()


def test_the_scheduler_address_case_is_one_line(base, tmp_path):
    """Found by fuzzing: an unclosed IPv6 bracket ended in "internal error: ValueError"."""
    result = check(
        selo("localize", base / "scene.tif", "-q", QUERY, "--scheduler", "tcp://[::1"), codes=(2,)
    )
    assert result.err.strip().splitlines() == [
        "selo: error: --scheduler must be a Dask scheduler address such as tcp://host:8786 "
        "(Invalid IPv6 URL), got 'tcp://[::1'"
    ]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("address", ["tls://127.0.0.1:1", "ucx://127.0.0.1:1", "inproc://x"])
def test_schedulers_distributed_cannot_reach_are_cluster_errors(address):
    """Well-formed addresses of comms that need more than an address (TLS certificates,
    UCX) used to be internal errors."""
    from selo.cluster import connect
    from selo.errors import ClusterError

    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        with connect(address, timeout=1):
            pass


@pytest.mark.timeout(240)
def test_random_serve_options(request, base, tmp_path):
    """``selo serve`` of a scene or a collection with a port it cannot use and random other
    options of its own: one line and exit code 2, before any scene is embedded (it never
    starts serving)."""
    bad_ports = st.one_of(weird, st.sampled_from(["-1", "65536", str(10**20)])).filter(
        lambda port: not _usable_port(port)  # else it would serve, until interrupted
    )

    @fuzz_settings(request, 40)
    @given(
        port=bad_ports,
        targets=st.sampled_from(  # one scene, or a collection
            [[base / "scene.tif"], [base / "scene.tif", base / "scene.png"], [base]]
        ),
        options=st.dictionaries(
            st.sampled_from(
                ["--map-cache", "--host", "--anno", "--images", "--index", "--skip-bad"]
            ),
            st.none(),
            max_size=3,
        ).flatmap(
            lambda keys: st.fixed_dictionaries(
                {
                    k: {
                        "--map-cache": st.one_of(weird, _ints(-5, 10**12)),
                        "--host": st.sampled_from(BAD_HOSTS),
                        "--anno": st.sampled_from(BAD_PATHS),
                        "--images": st.sampled_from(BAD_PATHS),
                        "--index": st.one_of(weird, st.sampled_from(["exact", "int8", "INT8"])),
                        "--skip-bad": st.none(),  # a flag
                    }[k]
                    for k in keys
                }
            )
        ),
    )
    def run(port, targets, options):
        args = [a for kv in options.items() for a in kv if a is not None]
        result = selo(
            "serve", *targets, "--port", port, *args,
            env={"SELO_CACHE_DIR": str(tmp_path / "cache")},
        )  # fmt: skip
        check(result, codes=(2,))

    run()


def _usable_port(text: str) -> bool:
    """Whether ``--port text`` names a port selo could listen on (click reads it as int)."""
    try:
        return 0 <= int(text) <= 65535
    except ValueError:
        return False


BAD_HOSTS = [
    "\ud800", "a\x00", "", " ", "[::1]", "::1", "[", "]", "[]", "999.1.1.1", "1.2.3.4.5",
    "a" * 300, "::", ":::", "[127.0.0.1]", "::ffff:127.0.0.1", "localhost", "0.0.0.0",
]  # fmt: skip


@pytest.mark.parametrize("host", BAD_HOSTS, ids=ascii)
def test_hosts_to_listen_on(host):
    """Any --host gives a listening socket or a SeloError (one line), never a crash."""
    from selo.errors import SeloError
    from selo.selo_tasks.serve import bind

    try:
        bind(host, 0).close()
    except SeloError as e:
        assert "--host" in str(e) or "check --host" in str(e)


@pytest.fixture(scope="module")
def collection_client(tmp_path_factory):
    """``selo serve`` of a small collection (three georeferenced scenes and a PNG) as a
    test client, with one map asked for on a georeferenced scene."""
    pytest.importorskip("fastapi")
    pytest.importorskip("morecantile")
    from fastapi.testclient import TestClient
    from scenes import write_collection

    from selo.selo_tasks.options import Options
    from selo.selo_tasks.serve.app import create_app
    from selo.selo_tasks.serve.state import ServeState
    from selo.selo_tasks.session import run_session

    root = tmp_path_factory.mktemp("fuzz-collection")
    folder = write_collection(root / "tiles")
    options = Options(cache=str(root / "cache"), scales="128,256", show_progress=False)
    with run_session(options, one_scene=True) as ctx:
        state = ServeState.for_collection(ctx, [folder])
        client = TestClient(create_app(state), base_url="http://127.0.0.1")
        sid = state.placed[0].id
        record = client.post(f"/api/scenes/{sid}/maps", json={"sentence": QUERY}).json()
        yield client, state, record
        state.close()


def _path_number(value) -> str:
    """A number as a user could put it in a URL path (floats and huge integers too)."""
    return str(value).replace("/", "")


@pytest.mark.timeout(240)
def test_random_collection_requests(request, collection_client):
    """``selo serve`` of a collection: random JSON bodies for its search and random tile
    coordinates for its Web-Mercator tiles get an answer or a 4xx JSON error naming what
    is wrong, never a 500."""
    client, state, record = collection_client
    zmax = state.mercator_zoom()
    coordinate = st.one_of(st.integers(-3, 2**zmax + 3), numbers, st.sampled_from(["", "x"]))
    bodies = st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"sentence": st.one_of(texts, st.text(max_size=40), json_values)},
            optional={"top": st.one_of(numbers, json_values)},
        ),
    )

    @fuzz_settings(request, 60)
    @given(
        body=bodies,
        tile=st.tuples(st.integers(-2, zmax + 2) | numbers, coordinate, coordinate),
        style=st.sampled_from(["jet", "gray", "", "JET", "\u00e9"]),
    )
    def run(body, tile, style):
        data = json.dumps(body).encode()  # lone surrogates stay escaped, as a browser sends them
        answer = client.post("/api/search", content=data)
        assert answer.status_code in (200, 413, 422), (body, answer.text)
        if answer.status_code == 200:
            hits = answer.json()["hits"]
            assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
        else:
            assert answer.json()["status"] == answer.status_code
        z, x, y = (_path_number(v) for v in tile)
        for url in (
            f"/api/mercator/{z}/{x}/{y}.jpg",
            record["mercator_tiles"].format(z=z, x=x, y=y) + f"?style={style}",
        ):
            answer = client.get(url)
            assert answer.status_code in (200, 404, 422), (url, answer.text)
            if answer.status_code != 200:
                assert answer.json()["status"] == answer.status_code

    run()


@pytest.mark.timeout(240)
def test_random_api_options(request, base, tmp_path):
    """The Python API's keywords: a SeloError naming the option when selo.localize is
    called, or a Dataset that computes — never a bare error at compute time."""
    import selo as api
    from selo.errors import SeloError

    anything = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8),
        st.tuples(st.integers(-5, 600)), st.lists(st.integers(0, 600), max_size=3),
    )  # fmt: skip
    values = {
        "batch": st.one_of(anything, st.integers(1, 64)),
        "chunk": st.one_of(anything, st.integers(256, 4096)),
        "scales": st.one_of(anything, st.sampled_from(["64,96", (64,), "0", "a"])),
        "method": st.one_of(anything, st.sampled_from(["v1", "v2"])),
        "seed": anything,
        "precision": st.one_of(anything, st.sampled_from(["fp32", "bf16", "fp16"])),
        "encoder": st.one_of(anything, st.sampled_from(["color", "openclip:", "nope"])),
        "checkpoint": anything,
        "device": anything,
        "cache": st.one_of(anything, st.just(False), st.sampled_from(BAD_PATHS)),
        "paper_compat": anything,
        "workers": anything,
        "nonsense": anything,
    }
    scene = colour_scene((96, 128))

    @fuzz_settings(request, 60)
    @given(
        options=st.dictionaries(st.sampled_from(list(values)), st.none(), max_size=3).flatmap(
            lambda keys: st.fixed_dictionaries({k: values[k] for k in keys})
        )
    )
    def run(options):
        options.setdefault("cache", str(tmp_path / "cache"))
        try:
            ds = api.localize(scene, QUERY, **options)
        except SeloError:
            return
        assert ds.selo.values.shape == (1, 96, 128)

    run()


def _env_cases(tmp: Path) -> dict[str, dict[str, str | None]]:
    (tmp / "a-file").write_text("x")
    (tmp / "staged-is-file").mkdir()
    (tmp / "staged-is-file" / "staged").write_text("x")
    (tmp / "zarr-is-file").mkdir()
    (tmp / "zarr-is-file" / "embeddings.zarr").write_text("x")
    (tmp / "keys-is-folder" / "scene-keys.json").mkdir(parents=True)
    (tmp / "dangling").symlink_to(tmp / "nowhere")
    return {
        "cache-is-a-file": {"SELO_CACHE_DIR": str(tmp / "a-file")},
        "cache-under-a-file": {"SELO_CACHE_DIR": str(tmp / "a-file" / "sub")},
        "cache-name-too-long": {"SELO_CACHE_DIR": str(tmp / ("x" * 300))},
        "cache-path-too-long": {"SELO_CACHE_DIR": str(tmp / "/".join(["y" * 200] * 30))},
        "cache-unknown-user": {"SELO_CACHE_DIR": "~selo-no-such-user/cache"},
        "cache-dangling-link": {"SELO_CACHE_DIR": str(tmp / "dangling")},
        "staged-is-a-file": {"SELO_CACHE_DIR": str(tmp / "staged-is-file")},
        "embeddings-is-a-file": {"SELO_CACHE_DIR": str(tmp / "zarr-is-file")},
        "key-index-is-a-folder": {"SELO_CACHE_DIR": str(tmp / "keys-is-folder")},
        "xdg-is-a-file": {"SELO_CACHE_DIR": None, "XDG_CACHE_HOME": str(tmp / "a-file")},
        "gdal-cachemax-junk": {"SELO_CACHE_DIR": str(tmp / "c1"), "GDAL_CACHEMAX": "lots"},
        "gdal-cachemax-negative": {"SELO_CACHE_DIR": str(tmp / "c2"), "GDAL_CACHEMAX": "-5"},
    }


ENV_CASES = [
    "cache-is-a-file", "cache-under-a-file", "cache-name-too-long", "cache-path-too-long",
    "cache-unknown-user", "cache-dangling-link", "staged-is-a-file", "embeddings-is-a-file",
    "key-index-is-a-folder", "xdg-is-a-file", "gdal-cachemax-junk", "gdal-cachemax-negative",
]  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("case", "option"),
    [(c, False) for c in ENV_CASES] + [(c, True) for c in ENV_CASES if c.startswith("cache-")],
    ids=[*ENV_CASES, *(f"{c}-as-option" for c in ENV_CASES if c.startswith("cache-"))],
)
def test_environment(case, option, base, tmp_path):
    env = _env_cases(tmp_path)[case]
    extra = []
    if option:  # the same folder given with --cache-dir (other variables unchanged)
        extra = ["--cache-dir", env.pop("SELO_CACHE_DIR")]
        env["SELO_CACHE_DIR"] = str(tmp_path / "unused")
    out = tmp_path / "out"
    result = selo(
        "localize", base / "scene.png", "-q", QUERY, "--scales", SCALES, "--out", out, *extra,
        env=env,
    )  # fmt: skip
    check(result, out)


LONG_NAME = "n" * 300
DEEP_PATH = "/".join(["d" * 200] * 30)  # longer than any path the system accepts


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "path",
    [LONG_NAME, DEEP_PATH, "nul\x00byte", "bad\udcff"],
    ids=["name-too-long", "path-too-long", "nul-byte", "not-utf8"],
)
@pytest.mark.parametrize(
    "command",
    [
        "localize {p}", "localize SCENE --out {p}", "localize SCENE --cache-dir {p}",
        "localize SCENE --model openclip:ViT-B-32 --checkpoint {p}", "localize SCENE --model hf-clip:{p}",
        "localize SCENE --model amfmn:{p} --checkpoint SCENE", "eval --anno {p} --maps MAPS",
        "eval --anno ANNO --maps {p}", "eval --anno ANNO --maps MAPS --out {p}",
        "airslt --images {p} --anno ANNO", "airslt --images MAPS --anno ANNO --out {p}",
        "synth-airslt {p}", "demo --out {p}", "serve {p}", "compare {p} MAPS",
        "compare MAPS MAPS --out {p}", "localize SCENE --bands 1,2,3 --out {p}",
    ],
)  # fmt: skip
def test_unusable_paths(command, path, base, tmp_path):
    """Paths the file system refuses to look at (Python raises for them), or that GDAL
    cannot take (not UTF-8), are usage errors."""
    args = command.format(p=tmp_path / path).split()
    names = {"SCENE": base / "scene.png", "ANNO": base / "anno.json", "MAPS": tmp_path}
    args = [str(names.get(a, a)) for a in args]
    if args[0] == "localize":
        args += ["-q", QUERY, "--scales", SCALES]
    if args[0] in ("airslt", "demo"):
        args += ["--in-process"]
    result = check(selo(*args, env={"SELO_CACHE_DIR": str(tmp_path / "cache")}), codes=(2,))
    reasons = ("too long", "not found", "embedded null byte", "not UTF-8", "no such model dir")
    assert any(r in result.err for r in reasons), result


# --- what a user sees in a terminal -------------------------------------------------------------


def _python(script: str, tmp: Path) -> subprocess.CompletedProcess:
    """``python -c script`` in a fresh interpreter (no pytest warning filters, real fds)."""
    import selo

    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(selo.__file__).parents[1]), str(Path(__file__).parent)]
    )
    env["SELO_CACHE_DIR"] = str(tmp / "cache")
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.timeout(300)
def test_a_terminal_sees_one_line_or_nothing(base, tmp_path):
    """Outside pytest: no warnings for scenes without georeferencing or with extreme values,
    and a damaged tile found by a worker process is one line (no "Compute Failed" block)."""
    float_scene = colour_scene(SHAPE).astype(np.float64)
    float_scene[:50] = 1.7e308
    float_scene[50:, :20] = -1.7e308
    from scenes import write_geotiff_scene

    write_geotiff_scene(tmp_path / "f64.tif", float_scene)
    data = bytearray((base / "scene.tif").read_bytes())
    offsets, sizes = tiff_blocks(bytes(data))
    for i in range(offsets[1] + 2, offsets[1] + sizes[1] - 4):
        data[i] ^= 0x5A
    (tmp_path / "bad.tif").write_bytes(bytes(data))
    script = f"""
from selo.selo_tasks.cli import main
common = ["-q", "white roofs", "--scales", "{SCALES}", "--out"]
codes = [
    main(["localize", "{base / "scene.png"}", *common, "o1"]),
    main(["localize", "{tmp_path / "f64.tif"}", *common, "o2"]),
    main(["localize", "{tmp_path / "bad.tif"}", *common, "o3", "--workers", "1"]),
]
print(codes)
"""
    done = _python(script, tmp_path)
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 2]", done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.tif: damaged pixel data" in lines[0], done.stderr


# --- the synthetic test set ------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "options",
    [
        ("--seed", "-1"), ("--seed", str(2**200)), ("--seed", "1e3"), ("--scale", "0"),
        ("--scale", "nan"), ("--scale", "1e-300"), ("--scale", "inf"), ("--scale", "0.01"),
        ("--scale", "0.009"), ("--scale", "1.5"), ("--scale", "-0.5"), ("--scale", "x"),
    ],
    ids=str,
)  # fmt: skip
def test_synthetic_set_options(options, tmp_path):
    out = tmp_path / "synth"
    extra = [] if options[0] == "--scale" else ["--scale", "0.01"]
    check(selo("synth-airslt", out, *options, *extra), out)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("content", ["", "[]", "{bad", "[" * 100_000, '{"settings": 5}'])
def test_damaged_synthetic_set_record(content, tmp_path):
    out = tmp_path / "synth"
    check(selo("synth-airslt", out, "--scale", "0.01"), out, codes=(0,))
    (out / "synth.json").write_text(content)
    check(selo("synth-airslt", out, "--scale", "0.01"), out, codes=(0,))


# --- remote scenes (servers on 127.0.0.1: tests/servers.py) -------------------------------------

# short limits, so that a stalled server fails a case in seconds (the defaults are 10 s / 30 s)
QUICK = {
    "GDAL_HTTP_LOW_SPEED_TIME": "2",
    "GDAL_HTTP_CONNECTTIMEOUT": "2",
    "GDAL_HTTP_MAX_RETRY": "0",
}


def remote(location: str, tmp: Path, *extra, env=None, codes=(2,)) -> Result:
    """``selo localize LOCATION``, checked (see :func:`check`); a failure names the location."""
    out, cache = tmp / "out", tmp / "cache"
    result = selo(
        "localize", location, "-q", QUERY, "--scales", SCALES, "--out", out, *extra,
        env={"SELO_CACHE_DIR": str(cache), **QUICK, **(env or {})},
    )  # fmt: skip
    check(result, out, cache, codes=codes)
    if result.code == 2:
        assert location in result.err.strip().splitlines()[-1], result
    return result


def _stac_item(assets: dict) -> str:
    return json.dumps({
        "type": "Feature", "stac_version": "1.0.0", "id": "fuzz", "geometry": None,
        "properties": {"datetime": "2026-01-01T00:00:00Z"}, "links": [], "assets": assets,
    })  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "case",
    ["404", "403", "unreachable-host", "stalled-server", "stalls-mid-read", "truncated",
     "random-bytes", "item-without-usable-asset", "item-asset-404", "item-not-json",
     "timeout-setting-junk"],
)  # fmt: skip
def test_bad_remote_http_scene(case, base, http_server, tmp_path):
    """Every way an http(s) scene can fail: one line naming the URL, exit code 2, nothing
    half-written, never a hang."""
    from servers import StallServer, closed_port

    www = http_server.root
    shutil.copy(base / "scene.tif", www / "scene.tif")
    (www / "forbidden").mkdir()
    shutil.copy(base / "scene.tif", www / "forbidden" / "scene.tif")
    data = (base / "scene.tif").read_bytes()
    if case == "404":
        remote(http_server.url("missing.tif"), tmp_path)
    elif case == "403":
        remote(http_server.url("forbidden/scene.tif"), tmp_path)
    elif case == "unreachable-host":
        with closed_port() as port:
            remote(f"http://127.0.0.1:{port}/scene.tif", tmp_path)
    elif case == "stalled-server":  # accepts the connection, never answers
        with StallServer() as stall:
            remote(stall.url("scene.tif"), tmp_path)
    elif case == "stalls-mid-read":  # answers the header, then stops
        offsets, _ = tiff_blocks(data)
        http_server.stall_from(min(offsets))
        remote(http_server.url("scene.tif"), tmp_path, "--chunk", "256")
    elif case == "truncated":
        (www / "cut.tif").write_bytes(data[: len(data) * 2 // 3])
        remote(http_server.url("cut.tif"), tmp_path)
    elif case == "random-bytes":
        (www / "random.tif").write_bytes(random.Random(7).randbytes(len(data)))
        remote(http_server.url("random.tif"), tmp_path)
    elif case == "item-without-usable-asset":
        thumb = {"href": "t.jpg", "type": "image/jpeg", "roles": ["thumbnail"]}
        (www / "item.json").write_text(_stac_item({"thumbnail": thumb}))
        remote(http_server.url("item.json"), tmp_path)
    elif case == "item-asset-404":
        (www / "item.json").write_text(
            _stac_item({"visual": {"href": "gone.tif", "roles": ["visual"]}})
        )
        result = remote(http_server.url("item.json"), tmp_path)
        assert "gone.tif" in result.err
    elif case == "item-not-json":
        (www / "item.json").write_bytes(b"{" + random.Random(3).randbytes(300))
        remote(http_server.url("item.json"), tmp_path)
    elif case == "timeout-setting-junk":
        result = selo("localize", http_server.url("scene.tif"), "-q", QUERY, "--out", tmp_path / "o",
                      env={"GDAL_HTTP_LOW_SPEED_TIME": "soon", "SELO_CACHE_DIR": str(tmp_path / "c")})  # fmt: skip
        check(result, tmp_path / "o", codes=(2,))
        assert "GDAL_HTTP_LOW_SPEED_TIME" in result.err


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "case", ["missing-object", "missing-bucket", "wrong-credentials", "unreachable-endpoint",
             "endpoint-junk", "truncated"],
)  # fmt: skip
def test_bad_remote_s3_scene(case, base, s3_bucket, tmp_path):
    from servers import S3Server, closed_port

    bucket, client, _ = s3_bucket
    data = (base / "scene.tif").read_bytes()
    if case == "missing-object":
        remote(f"s3://{bucket}/nothing.tif", tmp_path)
    elif case == "missing-bucket":
        remote(f"s3://{bucket}-gone/scene.tif", tmp_path)
    elif case == "wrong-credentials":  # a server that checks them (and knows none)
        with S3Server(auth=True) as strict:
            result = remote(
                f"s3://{bucket}/scene.tif", tmp_path, env={"AWS_ENDPOINT_URL": strict.endpoint}
            )
        assert "access denied" in result.err
    elif case == "unreachable-endpoint":
        with closed_port() as port:
            remote(
                f"s3://{bucket}/scene.tif",
                tmp_path,
                env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"},
            )
    elif case == "endpoint-junk":
        result = selo("localize", f"s3://{bucket}/scene.tif", "-q", QUERY, "--out", tmp_path / "o",
                      env={"AWS_ENDPOINT_URL": "http://[::1", "SELO_CACHE_DIR": str(tmp_path / "c")})  # fmt: skip
        check(result, tmp_path / "o", codes=(2,))
        assert "AWS_ENDPOINT_URL" in result.err
    elif case == "truncated":
        client.put_object(Bucket=bucket, Key="cut.tif", Body=data[: len(data) // 2])
        remote(f"s3://{bucket}/cut.tif", tmp_path)


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("localize", "--out"),
        ("localize", "--cache-dir"),
        ("airslt", "--out"),
        ("airslt", "--cache-dir"),
    ],
)
@pytest.mark.parametrize(
    "case", ["missing-bucket", "wrong-credentials", "unreachable-endpoint", "object-in-place",
             "not-an-object-store"],
)  # fmt: skip
def test_bad_remote_cache_or_output(command, option, case, base, s3_bucket, tmp_path, monkeypatch):
    """A cache or run folder in an object store that cannot be used: one line naming the URL,
    exit code 2, nothing half-written locally (no temporary left either, nothing made under
    the URL's name) or in the bucket."""
    import tempfile

    from servers import S3Server, closed_port

    bucket, client, _ = s3_bucket
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(tmp_path)
    url, env = f"s3://{bucket}/selo", {}
    if case == "missing-bucket":
        url = f"s3://{bucket}-gone/selo"
    elif case == "object-in-place":
        client.put_object(Bucket=bucket, Key="selo", Body=b"taken")
    elif case == "not-an-object-store":
        url = "https://example.com/selo"
    local = {"--out": tmp_path / "out", "--cache-dir": tmp_path / "cache"}
    local[option] = url
    if command == "localize":
        args = ["localize", base / "scene.tif", "-q", QUERY, "--scales", SCALES]
    else:
        (tmp_path / "images").mkdir()
        shutil.copy(base / "scene.png", tmp_path / "images" / "a.png")
        args = ["airslt", "--images", tmp_path / "images", "--anno", base / "anno.json"]
        args += ["--in-process", "--scales", SCALES]
    args += [a for k, v in local.items() for a in (k, v)]
    with contextlib.ExitStack() as stack:
        if case == "wrong-credentials":  # a server that checks them (and knows none)
            env["AWS_ENDPOINT_URL"] = stack.enter_context(S3Server(auth=True)).endpoint
        elif case == "unreachable-endpoint":
            env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{stack.enter_context(closed_port())}"
        result = check(selo(*args, env=env), tmp_path, codes=(2,))
    line = result.err.strip().splitlines()[-1]
    assert url in line, result
    expected = {
        "missing-bucket": "does not exist",
        "wrong-credentials": "access denied",
        "unreachable-endpoint": "cannot reach",
        "object-in-place": "not a folder",
        "not-an-object-store": "s3://, gs:// or az://",
    }[case]
    assert expected in line, result
    assert not [p for p in scratch.iterdir() if p.name.startswith("selo-")]  # (dask's is not ours)
    assert not (tmp_path / "s3:").exists()
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys <= {"selo"}, keys


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["tif", "tif-strips", "png", "jpg"])
def test_damaged_remote_scene_file(name, k, base, http_server, tmp_path):
    """The seeded damage of test_damaged_scene_file, served over HTTP: the same verdicts as the
    local file (the header checks read the remote file by ranges), the URL named."""
    file, fmt = SCENE_FILES[name]
    kind = KINDS[k % len(KINDS)]
    rng = random.Random(f"scene-{name}-{k}")
    (http_server.root / f"damaged.{fmt}").write_bytes(
        damage((base / file).read_bytes(), fmt, kind, rng)
    )
    remote(http_server.url(f"damaged.{fmt}"), tmp_path, codes=tif_expected(name, kind))
