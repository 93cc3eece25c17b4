"""The catalogue of bad inputs: what users get wrong, and what selo does about it.

Each entry builds its input in a temporary folder, runs one ``selo`` command,
and states the expected outcome: exit code 2 with one line on stderr that
contains ``message`` (naming the file, case or field), or exit code 0 where
the input is odd but usable. ``tests/test_bad_inputs.py`` runs every entry;
``python tests/bad_inputs.py`` prints the README's Troubleshooting table from
it (a test checks that the README is in sync).
"""

from __future__ import annotations

import errno
import json
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


def _airslt_missing_images(tmp: Path) -> list:
    return ["airslt", "--images", str(tmp / "nowhere"), "--out", str(tmp / "out"), *FAST]


def _airslt_missing_scenes(tmp: Path) -> list:
    (tmp / "images").mkdir()
    return ["airslt", "--images", str(tmp / "images"), "--out", str(tmp / "out"), *FAST]


def _compare_no_run(tmp: Path) -> list:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    return ["compare", str(tmp / "a"), str(tmp / "b"), "--out", str(tmp / "c.html")]


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
    # --- queries and options
    BadInput("empty query", _query(""), "non-empty", "give a sentence with -q"),
    BadInput("whitespace query", _query("   "), "non-empty", "give a sentence with -q"),
    BadInput("scale 0", _with("--scales", "0"), "scales must be positive", "use window sizes in pixels, e.g. 256,512,768"),
    BadInput("negative scale", _with("--scales", "-256"), "scales must be positive", "use window sizes in pixels, e.g. 256,512,768"),
    BadInput("non-numeric scale", _with("--scales", "big"), "scales must be whole numbers", "use window sizes in pixels, e.g. 256,512,768"),
    BadInput("scale larger than the scene (works)", _with("--scales", "5000"), "smaller than window size", "nothing to do: the window is clamped to the scene", code=0),
    BadInput("chunk size 0", _with("--chunk", "0"), "--chunk", "use a chunk side of at least 256 pixels"),
    # --- models and checkpoints
    BadInput("unknown model name", _with("--model", "resnet-9000"), "resnet-9000", "run `selo models` for the names"),
    BadInput("unknown open_clip architecture", _with("--model", "openclip:ViT-Z-99"), "ViT-Z-99", "use an architecture open_clip knows"),
    BadInput("preset without its checkpoint", _with("--model", "remoteclip-vit-b-32"), "RemoteCLIP-ViT-B-32.pt", "download the file and pass --checkpoint PATH"),
    BadInput("checkpoint file missing", _with("--model", "openclip:ViT-B-32", "--checkpoint", "/nonexistent/w.pt"), "/nonexistent/w.pt", "check the path"),
    BadInput("checkpoint for another architecture", _wrong_checkpoint, "missing", "use the architecture the weights were trained with"),
    BadInput("malicious checkpoint (pickle with code)", _pickle_with_code, "evil.pt", "use a plain state dict; never load untrusted pickles"),
    BadInput("CUDA asked for on a machine without it", _cuda, "cuda", "leave out --device, or use --device cpu"),
    # --- annotations
    BadInput("malformed annotation JSON", _anno(None, raw='[{"caption": "x",'), "not valid JSON", "fix the JSON at the line and column given"),
    BadInput("annotation case without points", _anno([{"caption": "x", "jpg_name": "a.png"}]), "case 0: missing field(s) 'points'", "add the field"),
    BadInput("point that is not a number", _anno([{**GOOD, "points": [[[0, 0], [5, "x"], [9, 9]]]}]), "point 1: y is not a finite number", "fix the point"),
    BadInput("polygon with 2 distinct points", _anno([{**GOOD, "points": [[[0, 0], [9, 9], [0, 0]]]}]), "fewer than 3 distinct points", "fix or drop the polygon"),
    BadInput("polygon with zero area", _anno([{**GOOD, "points": [[[0, 0], [5, 5], [9, 9]]]}]), "zero area", "fix or drop the polygon"),
    BadInput("image name leaving the images folder", _anno([{**GOOD, "jpg_name": "../../etc/passwd"}]), "not a plain file name", "use the scene's file name only"),
    BadInput("absolute image name", _anno([{**GOOD, "jpg_name": "/data/0.jpg"}]), "not a plain file name", "use the scene's file name only"),
    # --- maps (selo eval)
    BadInput("map missing", _map_case(lambda m: None), "case 0: no map in", "produce the map, or pass --skip-missing"),
    BadInput("map of the wrong shape", _wrong_shape, "case 0: map", "write maps at the scene's size"),
    BadInput("16-bit map", _map_case(lambda m: cv2.imwrite(str(m / "probmap_0.png"), np.zeros((300, 400), np.uint16))), "8-bit", "save maps as 8-bit images"),
    BadInput("unreadable map file", _map_case(lambda m: (m / "probmap_0.png").write_bytes(b"garbage")), "probmap_0.png", "write the map again"),
    # --- outputs
    BadInput("output folder is a file", _out_is_file, "taken: exists and is not a folder", "choose another --out"),
    BadInput("output folder under a file", _out_under_file, "taken/sub", "choose another --out"),
    BadInput("disk fills up while writing", _with(), "No space left on device", "free space or choose another --out", patch=_disk_full),
    # --- runs and clusters
    BadInput("images folder missing", _airslt_missing_images, "nowhere: images folder not found", "check --images"),
    BadInput("scenes named by the annotations missing", _airslt_missing_scenes, "22 scene(s) named by the annotations are missing", "add them, or pass --skip-missing"),
    BadInput("selo compare of a folder that is not a run", _compare_no_run, "a/run.json: not found", "give run folders that selo airslt or selo demo wrote"),
    BadInput("unreachable scheduler address", _with("--scheduler", "tcp://127.0.0.1:9"), "cannot reach the Dask scheduler at tcp://127.0.0.1:9", "check the address, or leave out --scheduler"),
    BadInput("--gpu without dask-cuda", _with("--gpu"), "dask-cuda", "pip install 'selo[gpu]' on a GPU machine"),
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
