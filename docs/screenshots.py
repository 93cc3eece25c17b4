"""The README's pictures of ``selo serve``: docs/serve.png and docs/serve-compare.png.

Scene 15.jpg of the synthetic AIR-SLT (``selo.selo_tasks.synth``: its three cases painted
in the colours their captions name: a cyan ship, white oil tanks, a white plane; softened
by a Gaussian blur) written as a georeferenced GeoTIFF, served with ``color`` in this
process and photographed in Chromium (Playwright, the system's Chromium). Each PNG is
reduced to 256 colours (Pillow) to stay small.

    python docs/screenshots.py [--workdir /tmp/selo-shots]
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import cv2
import rasterio
from PIL import Image
from rasterio.transform import from_origin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import launch, type_sentence  # noqa: E402

from selo.selo_tasks.annotations import load_annotations
from selo.selo_tasks.options import Options
from selo.selo_tasks.serve import BackgroundServer
from selo.selo_tasks.serve.state import ServeState
from selo.selo_tasks.session import run_session
from selo.selo_tasks.synth import render_scene, scene_sizes

DOCS = Path(__file__).resolve().parent
FIRST = "eight large white oil storage tanks"
SECOND = "a cyan ship with cargo"


def write_scene(path: Path) -> None:
    cases = load_annotations()
    sizes = scene_sizes(cases)
    mine = [c for c in cases if c.image == "15.jpg"]
    img = render_scene(sizes["15.jpg"], mine, scale=1.0)
    img = cv2.GaussianBlur(img, (0, 0), 3)  # a softer texture: a much smaller PNG
    profile = dict(
        driver="GTiff", height=img.shape[0], width=img.shape[1], count=3, dtype="uint8",
        crs="EPSG:32650", transform=from_origin(391000, 3450000, 0.5, 0.5), tiled=True,
        blockxsize=512, blockysize=512, compress="deflate",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(img.transpose(2, 0, 1))


def save(png: bytes, path: Path) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )
    print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")


def ask(page, sentence: str) -> str:
    record = type_sentence(page, sentence, timeout=600_000)
    page.wait_for_selector(f"body[data-features='{record['id']}']", timeout=600_000)
    return record["id"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/selo-shots"))
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.workdir.mkdir(parents=True, exist_ok=True)
    scene = args.workdir / "port-scene.tif"
    if not scene.exists():
        write_scene(scene)
    options = Options(cache=str(args.workdir / "cache"), show_progress=False)
    with run_session(options, one_scene=True) as ctx:
        state = ServeState.for_scenes(ctx, [scene])
        state.start_embedding()
        with BackgroundServer(state) as server, sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(server.url)
            page.wait_for_selector("body[data-status=ready]", timeout=600_000)
            second = ask(page, SECOND)
            ask(page, FIRST)
            box = page.locator("#map").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.42, box["y"] + box["height"] * 0.55)
            save(page.screenshot(), DOCS / "serve.png")
            page.select_option("#compare", value=second)
            page.wait_for_selector(f"body[data-compare='{second}']")
            page.uncheck("#show-centres")
            page.uncheck("#show-regions")
            page.eval_on_selector(
                "#opacity", "e => { e.value = 0.7; e.dispatchEvent(new Event('input')); }"
            )
            save(page.screenshot(), DOCS / "serve-compare.png")
            browser.close()
        state.close()


if __name__ == "__main__":
    main()
