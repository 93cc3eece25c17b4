"""The catalogue of bad inputs: what users get wrong, and what selo does about it.

Each entry builds its input in a temporary folder, runs one ``selo`` command,
and states the expected outcome: exit code 2 with one line on stderr that
contains ``message`` (naming the file, case or field), or exit code 0 where
the input is odd but usable. ``tests/test_bad_inputs.py`` runs every entry;
``python tests/bad_inputs.py`` prints the README's Troubleshooting table from
it (a test checks that the README is in sync).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scenes import colour_scene, square, write_geotiff_scene

FAST = ("--in-process",)


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input and the behaviour it must get."""

    name: str  # what the user did
    args: Callable[[Path], list]  # builds the input in tmp, returns the CLI arguments
    message: str  # expected in stderr (exit 2), or in stdout/stderr for exit 0
    fix: str  # what the user should do (README)
    code: int = 2
    patch: Callable | None = field(default=None)  # (monkeypatch) -> None, for faults


def _scene(tmp: Path, shape=(300, 400), **kw) -> Path:
    return write_geotiff_scene(tmp / "scene.tif", colour_scene(shape), **kw)


def _localize(scene: Path | str, *extra: str, tmp: Path | None = None) -> list:
    out = ["--out", str(tmp / "out")] if tmp is not None else []
    return ["localize", str(scene), "-q", "white roofs", "--scales", "128,256", *FAST, *out, *extra]


def _truncated(tmp: Path) -> list:
    path = _scene(tmp, (600, 800))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return _localize(path, tmp=tmp)


def _text_as_tif(tmp: Path) -> list:
    (tmp / "notes.tif").write_text("this is not an image\n")
    return _localize(tmp / "notes.tif", tmp=tmp)


def _empty_file(tmp: Path) -> list:
    (tmp / "empty.tif").write_bytes(b"")
    return _localize(tmp / "empty.tif", tmp=tmp)


def _one_pixel(tmp: Path) -> list:
    return _localize(
        write_geotiff_scene(tmp / "px.tif", np.full((1, 1, 3), 200, np.uint8)), tmp=tmp
    )


def _all_nodata(tmp: Path) -> list:
    empty = np.zeros((600, 800, 3), np.uint8)
    return _localize(write_geotiff_scene(tmp / "nd.tif", empty, nodata=0), tmp=tmp)


def _uint16(tmp: Path) -> list:
    img = colour_scene((300, 400)).astype(np.uint16) * 257
    return _localize(write_geotiff_scene(tmp / "u16.tif", img), tmp=tmp)


def _float(tmp: Path) -> list:
    img = colour_scene((300, 400)).astype(np.float32) / 255
    img[:10, :10] = np.nan
    return _localize(write_geotiff_scene(tmp / "f32.tif", img), tmp=tmp)


def _one_band(tmp: Path) -> list:
    return _localize(
        write_geotiff_scene(tmp / "gray.tif", colour_scene((300, 400))[..., :1]), tmp=tmp
    )


def _query(text: str) -> Callable[[Path], list]:
    def build(tmp: Path) -> list:
        return ["localize", str(_scene(tmp)), "-q", text, *FAST, "--out", str(tmp / "out")]

    return build


def _with(*extra: str) -> Callable[[Path], list]:
    return lambda tmp: _localize(_scene(tmp), *extra, tmp=tmp)


def _pickle_with_code(tmp: Path) -> list:
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp / "evil.pt"
    path.write_bytes(pickle.dumps({"state_dict": Evil()}))
    return _localize(
        _scene(tmp), "--model", "openclip:ViT-B-32", "--checkpoint", str(path), tmp=tmp
    )


def _wrong_checkpoint(tmp: Path) -> list:
    import torch

    path = tmp / "wrong.pt"
    torch.save({"visual.conv1.weight": torch.zeros(3, 3), "unrelated": torch.zeros(1)}, path)
    return _localize(
        _scene(tmp), "--model", "openclip:ViT-B-32", "--checkpoint", str(path), tmp=tmp
    )


def _cuda(tmp: Path) -> list:
    (tmp / "w.pt").write_bytes(b"")  # never read: the device is checked first
    return _localize(
        _scene(tmp),
        "--model",
        "openclip:ViT-B-32",
        "--checkpoint",
        str(tmp / "w.pt"),
        "--device",
        "cuda",
        tmp=tmp,
    )


def _anno(entries, raw: str | None = None) -> Callable[[Path], list]:
    def build(tmp: Path) -> list:
        maps = tmp / "maps"
        maps.mkdir()
        (tmp / "anno.json").write_text(raw if raw is not None else json.dumps(entries))
        return ["eval", "--anno", str(tmp / "anno.json"), "--maps", str(maps)]

    return build


GOOD = {"caption": "a green field", "jpg_name": "a.png", "points": [square(50, 40, 100)]}


def _map_case(write: Callable[[Path], None], *extra: str) -> Callable[[Path], list]:
    def build(tmp: Path) -> list:
        maps = tmp / "maps"
        maps.mkdir()
        (tmp / "anno.json").write_text(json.dumps([GOOD]))
        write(maps)
        return ["eval", "--anno", str(tmp / "anno.json"), "--maps", str(maps), *extra]

    return build


def _images_for_shape_check(tmp: Path) -> list:
    images = tmp / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((300, 400, 3), np.uint8))
    return ["--images", str(images)]


def _wrong_shape(tmp: Path) -> list:
    args = _map_case(
        lambda m: cv2.imwrite(str(m / "probmap_0.png"), np.zeros((200, 400), np.uint8))
    )(tmp)
    return [*args, *_images_for_shape_check(tmp)]


def _out_is_file(tmp: Path) -> list:
    (tmp / "taken").write_text("a file where the output folder should go")
    return _localize(_scene(tmp), "--out", str(tmp / "taken"))


def _out_under_file(tmp: Path) -> list:
    (tmp / "taken").write_text("x")
    return _localize(_scene(tmp), "--out", str(tmp / "taken" / "sub"))


def _disk_full(monkeypatch) -> None:
    """Every PNG the run writes fails as on a full disk."""
    import selo.pipeline.outputs as outputs

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.rasterio.shutil, "copy", full)


def _damaged_tile(tmp: Path) -> list:
    """A deflate GeoTIFF with garbage in one compressed tile (found inside a Dask task)."""
    import rasterio

    path = _scene(tmp, (600, 800))
    with rasterio.open(path) as ds:
        profile = {**ds.profile, "compress": "deflate"}
        pixels = ds.read()
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(pixels)
    with rasterio.open(path) as ds:
        offset = int(ds.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
        size = int(ds.get_tag_item("BLOCK_SIZE_1_1", "TIFF", bidx=1))
    data = bytearray(path.read_bytes())
    for i in range(offset + 2, offset + size - 4):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return _localize(path, tmp=tmp)


def _png(tmp: Path, name: str = "scene.png") -> Path:
    path = tmp / name
    cv2.imwrite(str(path), colour_scene((300, 400)))
    return path


def _truncated_png(tmp: Path) -> list:
    path = _png(tmp)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return _localize(path, tmp=tmp)


def _lying_geotiff(tmp: Path) -> list:
    """A 512x512 GeoTIFF of four tiles whose header claims 65535x65535 pixels."""
    import struct

    path = write_geotiff_scene(tmp / "lying.tif", colour_scene((512, 512)))
    data = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):  # ImageWidth, ImageLength
            struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, 65535)
    path.write_bytes(bytes(data))
    return _localize(path, tmp=tmp)


def _damaged_staged_copy(tmp: Path) -> list:
    """A PNG scene staged once, then its staged copy in the cache cut in half."""
    from selo.pipeline.scene import open_scene

    path = _png(tmp)
    staged = Path(open_scene(path).encoding["selo_source"].files[0].location)
    staged.write_bytes(staged.read_bytes()[: staged.stat().st_size // 2])
    return _localize(path, tmp=tmp)


def _no_georeferencing(tmp: Path) -> list:
    return _localize(_png(tmp), tmp=tmp)


def _random_checkpoint(tmp: Path) -> list:
    path = tmp / "junk.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return _localize(
        _scene(tmp), "--model", "openclip:ViT-B-32", "--checkpoint", str(path), tmp=tmp
    )


def _nan_checkpoint(tmp: Path) -> list:
    import torch

    path = tmp / "nan.pt"
    torch.save({"visual.conv1.weight": torch.full((3, 3), float("nan"))}, path)
    return _localize(
        _scene(tmp), "--model", "openclip:ViT-B-32", "--checkpoint", str(path), tmp=tmp
    )


def _hf_config_not_an_object(tmp: Path) -> list:
    folder = tmp / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("[]")
    (folder / "model.safetensors").write_bytes(b"junk")
    return _localize(_scene(tmp), "--model", f"hf-clip:{folder}", tmp=tmp)


def _map_claiming(tmp: Path) -> list:
    """A map PNG whose header (CRC included) claims 50000x50000 pixels."""
    import struct
    import zlib

    def write(maps: Path) -> None:
        path = maps / "probmap_0.png"
        cv2.imwrite(str(path), np.zeros((300, 400), np.uint8))
        data = bytearray(path.read_bytes())
        struct.pack_into(">II", data, 16, 50000, 50000)
        struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
        path.write_bytes(bytes(data))

    return _map_case(write)(tmp)


def _truncated_map(tmp: Path) -> list:
    def write(maps: Path) -> None:
        path = maps / "probmap_0.jpg"
        cv2.imwrite(str(path), cv2.GaussianBlur(colour_scene((300, 400))[..., 0], (0, 0), 9))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return _map_case(write)(tmp)


def _cache_is_a_file(monkeypatch) -> None:
    monkeypatch.setenv("SELO_CACHE_DIR", __file__)  # any file will do: it is only looked at


def _negative_seed(tmp: Path) -> list:
    return [
        "localize",
        str(_scene(tmp)),
        "-q",
        "white roofs",
        "--method",
        "v2",
        "--seed",
        "-1",
        *FAST,
        "--out",
        str(tmp / "out"),
    ]


def _fills_no_pixel(tmp: Path) -> list:
    """A triangle whose box overlaps the map's corner but which lies outside it."""
    maps = tmp / "maps"
    maps.mkdir()
    cv2.imwrite(str(maps / "probmap_0.png"), np.zeros((300, 400), np.uint8))
    case = {**GOOD, "points": [[[-90, 50], [50, -90], [-90, -90]]]}
    (tmp / "anno.json").write_text(json.dumps([case]))
    return ["eval", "--anno", str(tmp / "anno.json"), "--maps", str(maps)]


def _resume_over_a_list(tmp: Path) -> list:
    """A run folder whose case_00/metrics.json holds [] (not a record): computed again."""
    images = tmp / "images"
    images.mkdir()
    _png(images, "a.png")
    (tmp / "anno.json").write_text(json.dumps([GOOD]))
    (tmp / "out" / "case_00").mkdir(parents=True)
    (tmp / "out" / "case_00" / "metrics.json").write_text("[]")
    return [
        "airslt", "--images", str(images), "--anno", str(tmp / "anno.json"), "--out",
        str(tmp / "out"), "--resume", "--scales", "128,256", "--no-profile", *FAST,
    ]  # fmt: skip


def _airslt_missing_images(tmp: Path) -> list:
    return ["airslt", "--images", str(tmp / "nowhere"), "--out", str(tmp / "out"), *FAST]


def _airslt_missing_scenes(tmp: Path) -> list:
    (tmp / "images").mkdir()
    return ["airslt", "--images", str(tmp / "images"), "--out", str(tmp / "out"), *FAST]


def _compare_no_run(tmp: Path) -> list:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    return ["compare", str(tmp / "a"), str(tmp / "b"), "--out", str(tmp / "c.html")]


# --- remote scenes: servers on 127.0.0.1 (tests/servers.py), stopped after the run ---------


@contextlib.contextmanager
def environment(env: dict[str, str | None]):
    """Set (or, for None, unset) environment variables for the duration."""
    saved = {k: os.environ.get(k) for k in env}
    try:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _http(tmp: Path, name: str, content: bytes | None = None):
    """``selo localize`` of ``name`` on an HTTP server of ``tmp/www`` (``content`` put there)."""
    from servers import RangeServer

    (tmp / "www").mkdir()
    if content is not None:
        (tmp / "www" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "www" / name).write_bytes(content)
    with RangeServer(tmp / "www") as server:
        yield _localize(server.url(name), tmp=tmp)


def _url_404(tmp: Path):
    return _http(tmp, "missing.tif")


def _url_403(tmp: Path):
    return _http(tmp, "forbidden/scene.tif", _scene(tmp).read_bytes())


def _url_truncated(tmp: Path):
    data = _scene(tmp, (600, 800)).read_bytes()
    return _http(tmp, "cut.tif", data[: len(data) // 2])


@contextlib.contextmanager
def _url_unreachable(tmp: Path):
    from servers import closed_port

    with closed_port() as port:
        yield _localize(f"http://127.0.0.1:{port}/scene.tif", tmp=tmp)


@contextlib.contextmanager
def _url_stalls(tmp: Path):
    from servers import StallServer

    with StallServer() as stall, environment({"GDAL_HTTP_LOW_SPEED_TIME": "2"}):
        yield _localize(stall.url("scene.tif"), tmp=tmp)


@contextlib.contextmanager
def _s3(tmp: Path, location: str, *extra: str, auth: bool = False, **env: str):
    """``selo localize`` of an ``s3://`` location (or a local scene, with ``extra`` options
    naming places in the store) on moto's S3 server, whose bucket "selo" holds scene.tif
    (credentials and AWS_ENDPOINT_URL set while it runs)."""
    import boto3
    from servers import S3Server

    with S3Server(auth=auth) as server:
        keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        with environment(
            {**keys, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": server.endpoint}
        ):
            if not auth:
                client = boto3.client("s3", endpoint_url=server.endpoint)
                client.create_bucket(Bucket="selo")
                client.upload_file(str(_scene(tmp)), "selo", "scene.tif")
            with environment(env):
                yield _localize(location, *extra, tmp=tmp)


def _s3_place(option: str, url: str, **kw) -> Callable[[Path], object]:
    """A local scene, with ``option`` (--out, --cache-dir) at ``url`` in the S3 server."""
    return lambda tmp: _s3(tmp, str(_scene(tmp)), option, url, **kw)


@contextlib.contextmanager
def _s3_unreachable(tmp: Path):
    from servers import closed_port

    with closed_port() as port:
        with _s3(tmp, str(_scene(tmp)), "--out", "s3://selo/run") as args:
            with environment({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}):
                yield args


def _stac(assets: dict) -> Callable[[Path], list]:
    def build(tmp: Path) -> list:
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": "item",
            "geometry": None,
            "properties": {"datetime": "2026-01-01T00:00:00Z"},
            "links": [],
            "assets": assets,
        }
        (tmp / "item.json").write_text(json.dumps(item))
        write_geotiff_scene(tmp / "r.tif", colour_scene((300, 400))[..., :1], nodata=0)
        write_geotiff_scene(tmp / "g.tif", colour_scene((150, 200))[..., :1], nodata=0)
        return _localize(tmp / "item.json", tmp=tmp)

    return build


def _band(name: str) -> dict:
    return {
        "href": f"{name[0]}.tif",
        "type": "image/tiff",
        "eo:bands": [{"name": name, "common_name": name}],
    }


def _search(tmp: Path, *items, extra: tuple[str, ...] = ()) -> list:
    return [
        "search",
        *map(str, items),
        "-q",
        "red roofs",
        "--scales",
        "128,256",
        "--out",
        str(tmp / "out"),
        *extra,
    ]


def _search_empty_folder(tmp: Path) -> list:
    (tmp / "tiles").mkdir()
    return _search(tmp, tmp / "tiles")


def _search_unusable(*extra: str) -> Callable[[Path], list]:
    def build(tmp: Path) -> list:
        (tmp / "notes.tif").write_text("not a raster")
        return _search(tmp, _scene(tmp), tmp / "notes.tif", tmp / "missing.tif", extra=extra)

    return build


def _search_twice(tmp: Path) -> list:
    scene = _scene(tmp)
    return _search(tmp, scene, scene)


def _search_copy(tmp: Path) -> list:
    scene = _scene(tmp)
    (tmp / "copy.tif").write_bytes(scene.read_bytes())
    return _search(tmp, scene, tmp / "copy.tif")


def _search_nodata(tmp: Path) -> list:
    empty = write_geotiff_scene(tmp / "nd.tif", np.zeros((300, 400, 3), np.uint8), nodata=0)
    return _search(tmp, _scene(tmp), empty)


CATALOGUE: list[BadInput] = [
    # --- scene files
    BadInput("scene file does not exist", lambda t: _localize(t / "missing.tif", tmp=t), "missing.tif: scene not found", "check the path"),
    BadInput("scene path is a folder", lambda t: _localize(t, tmp=t), "not a raster", "give the path of an image file"),
    BadInput("truncated GeoTIFF", _truncated, "scene.tif", "the file is incomplete: copy or download it again"),
    BadInput("text file named .tif", _text_as_tif, "notes.tif: not a raster", "give a GeoTIFF, JPEG, PNG or other GDAL raster"),
    BadInput("zero-byte scene file", _empty_file, "empty.tif", "the file is empty: copy it again"),
    BadInput("1-pixel scene (works)", _one_pixel, "", "nothing to do: every window covers the scene", code=0),
    BadInput("scene smaller than every window (works)", _with("--scales", "512,768"), "smaller than window size", "nothing to do: windows are clamped to the scene", code=0),
    BadInput("scene with no data at all", _all_nodata, "nd.tif: every pixel is nodata", "check the file's nodata value or choose another scene"),
    BadInput("16-bit scene (works)", _uint16, "", "nothing to do: values are stretched to 8 bits (2nd-98th percentile)", code=0),
    BadInput("float scene with NaN (works)", _float, "", "nothing to do: NaN is nodata, values are stretched", code=0),
    BadInput("1-band scene (works)", _one_band, "", "nothing to do: the band is used as gray", code=0),
    BadInput("band that does not exist", _with("--bands", "1,2,9"), "band", "pick bands between 1 and the file's band count"),
    BadInput("GeoTIFF with a damaged compressed tile", _damaged_tile, "scene.tif: damaged pixel data", "the file is damaged: copy or download it again"),
    BadInput("PNG cut short", _truncated_png, "scene.png: damaged PNG", "the file is incomplete: copy or download it again"),
    BadInput("header claiming more pixels than the file holds", _lying_geotiff, "lying.tif: damaged GeoTIFF", "the file is damaged: copy or download it again"),
    BadInput("damaged staged copy in the cache (works)", _damaged_staged_copy, "staging again", "nothing to do: the copy is made again from the scene", code=0),
    BadInput("scene without georeferencing (works)", _no_georeferencing, "no CRS in the scene", "nothing to do: outputs use pixel coordinates", code=0),
    # --- queries and options
    BadInput("empty query", _query(""), "non-empty", "give a sentence with -q"),
    BadInput("whitespace query", _query("   "), "non-empty", "give a sentence with -q"),
    BadInput("scale 0", _with("--scales", "0"), "scales must be positive", "use window sizes in pixels, e.g. 256,512,768"),
    BadInput("negative scale", _with("--scales", "-256"), "scales must be positive", "use window sizes in pixels, e.g. 256,512,768"),
    BadInput("non-numeric scale", _with("--scales", "big"), "scales must be whole numbers", "use window sizes in pixels, e.g. 256,512,768"),
    BadInput("scale larger than the scene (works)", _with("--scales", "5000"), "smaller than window size", "nothing to do: the window is clamped to the scene", code=0),
    BadInput("chunk size 0", _with("--chunk", "0"), "--chunk", "use a chunk side of at least 256 pixels"),
    BadInput("scale too large", _with("--scales", "100000000000000000000"), "scales must be at most", "use window sizes in pixels, at most the scene's size"),
    BadInput("more workers than the machine can hold", _with("--workers", "1000"), "--workers must be a whole number from 1 to", "leave out --workers, or give fewer"),
    BadInput("negative seed", _negative_seed, "--seed must be a whole number from 0", "use a seed from 0 to 2**63 - 1"),
    BadInput("scheduler that is not an address", _with("--scheduler", "notaurl"), "--scheduler must be a Dask scheduler address", "give an address such as tcp://host:8786"),
    BadInput("SELO_CACHE_DIR pointing at a file", _with(), "is a file, not a folder", "point SELO_CACHE_DIR or --cache-dir at a folder", patch=_cache_is_a_file),
    # --- models and checkpoints
    BadInput("unknown model name", _with("--model", "resnet-9000"), "resnet-9000", "run `selo models` for the names"),
    BadInput("unknown open_clip architecture", _with("--model", "openclip:ViT-Z-99"), "ViT-Z-99", "use an architecture open_clip knows"),
    BadInput("preset without its checkpoint", _with("--model", "remoteclip-vit-b-32"), "RemoteCLIP-ViT-B-32.pt", "download the file and pass --checkpoint PATH"),
    BadInput("checkpoint file missing", _with("--model", "openclip:ViT-B-32", "--checkpoint", "/nonexistent/w.pt"), "/nonexistent/w.pt", "check the path"),
    BadInput("checkpoint for another architecture", _wrong_checkpoint, "missing", "use the architecture the weights were trained with"),
    BadInput("malicious checkpoint (pickle with code)", _pickle_with_code, "evil.pt", "use a plain state dict; never load untrusted pickles"),
    BadInput("checkpoint of random bytes", _random_checkpoint, "cannot read checkpoint", "the file is damaged or not a checkpoint: download it again"),
    BadInput("checkpoint whose weights are NaN", _nan_checkpoint, "holds NaN or infinite values", "use weights from a run that did not diverge"),
    BadInput("Hugging Face folder with a damaged config.json", _hf_config_not_an_object, "config.json: expected a JSON object", "copy the model folder again"),
    BadInput("CUDA asked for on a machine without it", _cuda, "cuda", "leave out --device, or use --device cpu"),
    # --- annotations
    BadInput("malformed annotation JSON", _anno(None, raw='[{"caption": "x",'), "not valid JSON", "fix the JSON at the line and column given"),
    BadInput("annotation case without points", _anno([{"caption": "x", "jpg_name": "a.png"}]), "case 0: missing field(s) 'points'", "add the field"),
    BadInput("point that is not a number", _anno([{**GOOD, "points": [[[0, 0], [5, "x"], [9, 9]]]}]), "point 1: y is not a finite number", "fix the point"),
    BadInput("polygon with 2 distinct points", _anno([{**GOOD, "points": [[[0, 0], [9, 9], [0, 0]]]}]), "fewer than 3 distinct points", "fix or drop the polygon"),
    BadInput("polygon with zero area", _anno([{**GOOD, "points": [[[0, 0], [5, 5], [9, 9]]]}]), "zero area", "fix or drop the polygon"),
    BadInput("image name leaving the images folder", _anno([{**GOOD, "jpg_name": "../../etc/passwd"}]), "not a plain file name", "use the scene's file name only"),
    BadInput("absolute image name", _anno([{**GOOD, "jpg_name": "/data/0.jpg"}]), "not a plain file name", "use the scene's file name only"),
    BadInput("image name longer than 255 bytes", _anno([{**GOOD, "jpg_name": "a" * 300 + ".png"}]), "file names have at most 255", "use the scene's file name"),
    BadInput("annotation JSON nested too deeply", _anno(None, raw="[" * 100_000 + "]" * 100_000), "nested too deeply", "give a list of cases"),
    BadInput("5000-digit number in the annotations", _anno(None, raw='[{"caption": "x", "jpg_name": "a.png", "points": [[[' + "9" * 5000 + ", 0]]]}]"), "not valid JSON for selo", "fix the number"),
    BadInput("point far outside any image (1e300)", _anno([{**GOOD, "points": [[[0, 0], [1e300, 0], [0, 1e300]]]}]), "is not a pixel coordinate", "fix the point"),
    BadInput("caption with a lone surrogate", _anno(None, raw='[{"caption": "a \\ud800 roof", "jpg_name": "a.png", "points": [[[0, 0], [99, 0], [99, 99]]]}]'), "not valid Unicode text", "fix the caption's text"),
    BadInput("polygons that fill no pixel of the map", _fills_no_pixel, "fill no pixel", "fix the polygon's points"),
    # --- maps (selo eval)
    BadInput("map missing", _map_case(lambda m: None), "case 0: no map in", "produce the map, or pass --skip-missing"),
    BadInput("map of the wrong shape", _wrong_shape, "case 0: map", "write maps at the scene's size"),
    BadInput("16-bit map", _map_case(lambda m: cv2.imwrite(str(m / "probmap_0.png"), np.zeros((300, 400), np.uint16))), "8-bit", "save maps as 8-bit images"),
    BadInput("unreadable map file", _map_case(lambda m: (m / "probmap_0.png").write_bytes(b"garbage")), "probmap_0.png", "write the map again"),
    BadInput("map whose header claims 50000x50000 pixels", _map_claiming, "claims 50000×50000 pixels", "write the map again"),
    BadInput("truncated map (PNG or JPEG)", _truncated_map, "probmap_0.jpg: damaged pixel data", "write the map again"),
    # --- outputs
    BadInput("output folder is a file", _out_is_file, "taken: exists and is not a folder", "choose another --out"),
    BadInput("output folder under a file", _out_under_file, "taken/sub", "choose another --out"),
    BadInput("disk fills up while writing", _with(), "No space left on device", "free space or choose another --out", patch=_disk_full),
    # --- collections (selo search)
    BadInput("search of a folder without scenes", _search_empty_folder, "no scenes found", "name scene files, folders or globs"),
    BadInput("search with scenes that cannot be opened", _search_unusable(), "2 of 3 scene(s) cannot be searched", "fix or remove them, or pass --skip-bad to search the others"),
    BadInput("search with unusable scenes and --skip-bad (works)", _search_unusable("--skip-bad"), "skipped", "nothing to do: run.json lists the scenes left out", code=0),
    BadInput("search naming a scene twice", _search_twice, "named twice", "name each scene once"),
    BadInput("search with a copy of a scene", _search_copy, "the same scene as", "remove the copy, or pass --skip-bad"),
    BadInput("search with a scene without data", _search_nodata, "nd.tif: every pixel is nodata", "remove the scene, or pass --skip-bad"),
    # --- runs and clusters
    BadInput("images folder missing", _airslt_missing_images, "nowhere: images folder not found", "check --images"),
    BadInput("resume record that is not a record (works)", _resume_over_a_list, "", "nothing to do: the case is computed again", code=0),
    BadInput("scenes named by the annotations missing", _airslt_missing_scenes, "22 scene(s) named by the annotations are missing", "add them, or pass --skip-missing"),
    BadInput("selo compare of a folder that is not a run", _compare_no_run, "a/run.json: not found", "give run folders that selo airslt or selo demo wrote"),
    BadInput("unreachable scheduler address", _with("--scheduler", "tcp://127.0.0.1:9"), "cannot reach the Dask scheduler at tcp://127.0.0.1:9", "check the address, or leave out --scheduler"),
    BadInput("--gpu without dask-cuda", _with("--gpu"), "dask-cuda", "pip install 'selo[gpu]' on a GPU machine"),
    # --- remote scenes and STAC items
    BadInput("scene URL not found (HTTP 404)", _url_404, "missing.tif: not found (HTTP 404", "check the URL"),
    BadInput("scene URL forbidden (HTTP 403)", _url_403, "scene.tif: access denied (HTTP 403", "check the URL, or the credentials it needs"),
    BadInput("scene URL on a host nothing listens on", _url_unreachable, "cannot reach the server", "check the URL and the network"),
    BadInput("server that accepts and never answers", _url_stalls, "no answer from the server within 2 s", "check the server; GDAL_HTTP_LOW_SPEED_TIME (default 30 s) and GDAL_HTTP_CONNECTTIMEOUT (10 s) set how long selo waits"),
    BadInput("truncated GeoTIFF at a URL", _url_truncated, "cut.tif: not a raster rasterio can read (truncated", "upload the file again"),
    BadInput("S3 object missing", lambda tmp: _s3(tmp, "s3://selo/nothing.tif"), "s3://selo/nothing.tif: not found", "check the bucket and key"),
    BadInput("S3 bucket missing", lambda tmp: _s3(tmp, "s3://no-such-bucket/scene.tif"), "bucket does not exist", "check the bucket name"),
    BadInput("wrong S3 credentials", lambda tmp: _s3(tmp, "s3://selo/scene.tif", auth=True), "s3://selo/scene.tif: access denied", "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"),
    BadInput("AWS_ENDPOINT_URL that is not a URL", lambda tmp: _s3(tmp, "s3://selo/scene.tif", AWS_ENDPOINT_URL="minio:9000"), "AWS_ENDPOINT_URL='minio:9000'", "give the endpoint as http(s)://host:port"),
    BadInput("output bucket missing", _s3_place("--out", "s3://no-such-bucket/run"), "s3://no-such-bucket/run: the bucket no-such-bucket does not exist", "create the bucket, or check --out"),
    BadInput("cache in S3 with wrong credentials", _s3_place("--cache-dir", "s3://selo/cache", auth=True), "s3://selo/cache: access denied", "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"),
    BadInput("S3 endpoint unreachable for --out", _s3_unreachable, "cannot reach the server", "check AWS_ENDPOINT_URL and the network"),
    BadInput("output at a URL selo cannot write to", _with("--out", "https://example.com/run"), "s3://, gs:// or az://", "give a local folder or an s3://, gs:// or az:// URL"),
    BadInput("STAC item without a usable asset", _stac({"thumbnail": {"href": "t.jpg", "type": "image/jpeg", "roles": ["thumbnail"]}}), "no usable asset", "choose an asset with --asset NAME, or bands with --bands NAME,NAME,NAME"),
    BadInput("STAC item's bands on different grids", _stac({"red": _band("red"), "green": _band("green"), "blue": _band("red")}), "are on different grids", "choose bands of one resolution (--bands) or one asset (--asset)"),
    BadInput("band names given for a raster file", _with("--bands", "red,green,blue"), "go with a STAC item", "give a file's bands as numbers, such as 4,3,2"),
]  # fmt: skip


def markdown() -> str:
    """The README's Troubleshooting table."""
    rows = ["| what happened | what selo says (part of it) | what to do |", "| --- | --- | --- |"]
    for b in CATALOGUE:
        said = f"`{b.message}`" if b.message and b.code == 2 else ("works" if b.code == 0 else "")
        rows.append(f"| {b.name} | {said} | {b.fix} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown() + "\n")
