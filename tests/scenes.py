"""Small scenes and shapes the tests build (never downloaded)."""

from __future__ import annotations

from pathlib import Path


def square(x0: float, y0: float, size: float) -> list[list[float]]:
    """The corners of an axis-aligned square, as [x, y] points."""
    return [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size]]


def write_geotiff_scene(path, rgb, *, crs="EPSG:32633", nodata=None, dtype=None, transform=None):
    """Write an (H, W, 3) array as a tiled GeoTIFF with a UTM transform (0.5 m pixels), or
    ``transform``."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    data = np.moveaxis(np.asarray(rgb), -1, 0)
    profile = dict(
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=dtype or data.dtype,
        crs=crs,
        transform=transform or from_origin(500000, 4600000, 0.5, 0.5),
        nodata=nodata,
    )
    if data.shape[1] >= 256 and data.shape[2] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(profile["dtype"]))
    return Path(path)


def colour_scene(shape=(700, 900), seed=0):
    """A tawny textured scene with a white block and a green block (for `color`)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    h, w = shape
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (200, 150, 90)
    img[h // 8 : h // 3, w // 8 : w // 3] = (235, 235, 230)  # white
    img[h // 2 : h - h // 8, w // 2 : w - w // 8] = (60, 150, 60)  # green
    noise = rng.integers(-6, 7, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


COLLECTION_SHAPE = (512, 640)
COLLECTION_PATCH = (slice(100, 250), slice(300, 450))  # rows, cols of each scene's red patch


def collection_scenes():
    """Four scenes for ``selo search`` / ``selo serve`` of a collection: name -> (strength
    of the red patch, CRS, transform): three places in three CRSs, and a PNG without."""
    from rasterio.transform import from_origin

    return {
        "lonlat.tif": (0.5, "EPSG:4326", from_origin(-70.0, -33.4, 5e-6, 5e-6)),
        "plain.png": (0.75, None, None),
        "utm31.tif": (1.0, "EPSG:32631", from_origin(500000, 4600000, 0.5, 0.5)),
        "utm33.tif": (0.25, "EPSG:32633", from_origin(500000, 4600000, 0.5, 0.5)),
    }


def write_collection(folder):
    """Write :func:`collection_scenes` into ``folder`` (colour scenes with a red patch)."""
    import cv2
    import numpy as np

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, (strength, crs, transform)) in enumerate(collection_scenes().items()):
        img = colour_scene(COLLECTION_SHAPE, seed=seed)
        patch = img[COLLECTION_PATCH].astype(float)
        red = patch * (1 - strength) + np.array([220, 30, 30]) * strength
        img[COLLECTION_PATCH] = red.astype(np.uint8)
        if crs is None:
            cv2.imwrite(str(folder / name), img[..., ::-1])
        else:
            write_geotiff_scene(folder / name, img, crs=crs, transform=transform)
    return folder
