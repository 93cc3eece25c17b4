"""STAC: an Item is a scene, an ItemCollection, Catalog or Collection a list of scenes.

An Item (a JSON file or URL, or a ``pystac.Item``) is read as one scene
(:func:`item_parts`): its ``visual`` asset (the key ``visual`` or the role
``visual``), else its red, green and blue bands stacked, each found by its common name
or name in the assets' band lists (``eo:bands``, or STAC 1.1 ``bands``) or by asset
key. ``asset=`` reads one asset (its bands chosen by number, or by name in its band
list); ``bands=("red", "green", "blue")`` (or any names, such as ``nir,red,green``)
chooses bands across assets. Single-band Cloud-Optimized GeoTIFF assets are preferred
over other encodings of the same band (e.g. Earth Search's ``red`` over ``red-jp2``).
The assets are read window by window by selo's own reader (:mod:`selo.pipeline.source`),
with the same checks as any file; assets on different grids are refused.

JSON is read through :mod:`selo.pipeline.remote` (local files, ``https://``, ``s3://``,
...), with the credentials of the environment.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from ..errors import InputNotFoundError, SceneError, SeloError
from .remote import is_remote, open_binary

__all__ = [
    "as_item",
    "collection_items",
    "is_item",
    "is_stac_location",
    "item_parts",
    "read_json",
]

_JSON_SUFFIXES = (".json", ".geojson")
_RASTER_TYPES = ("image/tiff", "image/jp2", "image/png", "image/jpeg", "image/webp")
_NOT_PIXELS = {"thumbnail", "overview", "metadata", "mask", "cloud", "snow-ice"}
_MAX_JSON = 256 * 2**20


def is_item(value) -> bool:
    """Whether ``value`` is a ``pystac.Item`` (pystac is not imported for it: a value
    cannot be one of its items before pystac is)."""
    pystac = sys.modules.get("pystac")
    return pystac is not None and isinstance(value, pystac.Item)


def is_stac_location(location) -> bool:
    """Whether ``location`` names JSON (a STAC document) rather than a raster: a ``.json``
    name, or a file or URL whose content starts with ``{`` (STAC API item URLs end
    without a suffix)."""
    text = os.fspath(location)
    if text.lower().endswith(_JSON_SUFFIXES):
        return True
    name = text.rsplit("/", 1)[-1]
    if "." in name or (not is_remote(text) and not os.path.isfile(text)):
        return False
    try:
        with open_binary(text) as f:
            return f.read(64).lstrip()[:1] == b"{"
    except (OSError, SeloError):
        return False  # the raster reader says what is wrong


def read_json(location: str) -> Any:
    """The JSON document at a local path or URL (a SceneError naming it when unreadable)."""
    try:
        with open_binary(location) as f:
            data = f.read(_MAX_JSON + 1)
    except FileNotFoundError:
        raise InputNotFoundError(f"{location}: not found; check the path") from None
    except OSError as e:
        raise SceneError(f"{location}: cannot read the file ({e.strerror or e})") from None
    if len(data) > _MAX_JSON:
        raise SceneError(f"{location}: a JSON document larger than {_MAX_JSON >> 20} MiB")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise SceneError(f"{location}: not a STAC document (invalid JSON: {e})") from None


def _stac_io():
    import pystac.stac_io

    class RemoteStacIO(pystac.stac_io.DefaultStacIO):
        """pystac reads links (catalogs, collections, items) through selo's remote reads."""

        def read_text_from_href(self, href: str) -> str:
            with open_binary(href) as f:
                return f.read(_MAX_JSON).decode("utf-8")

    return RemoteStacIO()


def as_item(source):
    """The ``pystac.Item`` that ``source`` names (a ``pystac.Item``, a
    :class:`~selo.pipeline.source.SceneRef` of an item, or a JSON location), or None
    when it names a raster; a JSON document that is not an item is a SceneError."""
    from .source import SceneRef

    if is_item(source):
        return source
    if isinstance(source, SceneRef):
        if source.item is not None:
            return _item(source.item, source.location or None)
        source = source.location
    if not isinstance(source, str | os.PathLike) or not is_stac_location(source):
        return None
    location = os.fspath(source)
    data = read_json(location)
    kind = data.get("type") if isinstance(data, dict) else None
    if kind != "Feature":
        what = {"FeatureCollection": "an ItemCollection", "Catalog": "a Catalog"}.get(
            kind, "a Collection" if kind == "Collection" else None
        )
        if what:
            raise SceneError(
                f"{location}: {what}, a list of scenes, not one scene; name one item, or "
                "give it to selo airslt --images"
            )
        raise SceneError(f"{location}: not a STAC item (a JSON document of type {kind!r})")
    return _item(data, location)


def _item(data: dict, href: str | None):
    import pystac

    try:
        item = pystac.Item.from_dict(data, href=href, migrate=True, preserve_dict=False)
    except Exception as e:  # noqa: BLE001 - pystac's validation errors vary; named in one line
        raise SceneError(f"{href or 'the STAC item'}: not a usable STAC item ({e})") from None
    if href is not None:
        item.set_self_href(href)
    return item


def collection_items(location: str, data: dict) -> list[tuple[str, str, dict | None]]:
    """``(name, location, inline item or None)`` of every item of an ItemCollection,
    a Catalog or a Collection (static: its links followed, recursively)."""
    import pystac

    kind = data.get("type")
    if kind == "Feature":
        return [(str(data.get("id")), location, None)]
    if kind == "FeatureCollection":
        out = []
        for feature in data.get("features") or []:
            if not isinstance(feature, dict):
                raise SceneError(f"{location}: an ItemCollection entry is not a STAC item")
            links = [link for link in feature.get("links") or [] if isinstance(link, dict)]
            self_href = next((k.get("href") for k in links if k.get("rel") == "self"), None)
            out.append((str(feature.get("id")), self_href or location, feature))
        return out
    if kind not in ("Catalog", "Collection"):
        raise SceneError(f"{location}: not a STAC document (type {kind!r})")
    try:
        cls = pystac.Collection if kind == "Collection" else pystac.Catalog
        catalog = cls.from_dict(data, href=location, migrate=True)
        catalog._stac_io = _stac_io()
        items = list(catalog.get_items(recursive=True))
    except SeloError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken link or document, named in one line
        raise SceneError(f"{location}: cannot read this STAC catalog's items ({e})") from None
    return [(item.id, item.get_self_href() or location, None) for item in items]


# --- choosing assets and bands --------------------------------------------------------------


def _bands_of(asset) -> list[dict]:
    """An asset's band list (``eo:bands``, or STAC 1.1 ``bands``), as dicts."""
    fields = asset.extra_fields
    bands = fields.get("eo:bands") or fields.get("bands") or []
    return [b for b in bands if isinstance(b, dict)]


def _names(band: dict) -> set[str]:
    return {
        str(band[k]).lower()
        for k in ("name", "common_name", "eo:common_name")
        if isinstance(band.get(k), str)
    }


def _is_raster(key: str, asset) -> bool:
    roles = set(asset.roles or [])
    if roles & _NOT_PIXELS and not roles & {"data", "visual"}:
        return False
    media = (asset.media_type or "").lower()
    if media:
        return media.startswith(_RASTER_TYPES)
    return asset.href.lower().endswith((".tif", ".tiff", ".jp2", ".png", ".jpg", ".jpeg"))


def _rank(key: str, asset, name: str, band_count: int) -> tuple:
    """Lower is better: the asset named like the band, single-band, a COG."""
    media = (asset.media_type or "").lower()
    return (
        key.lower() != name,
        band_count > 1,
        "cloud-optimized" not in media,
        not media.startswith("image/tiff"),
        key,
    )


def _find_band(item, name: str) -> tuple[str, int] | None:
    """``(asset key, 1-based band)`` of the band called ``name`` (see the module)."""
    name = name.lower()
    found = []
    for key, asset in item.assets.items():
        if not _is_raster(key, asset):
            continue
        bands = _bands_of(asset)
        for number, band in enumerate(bands, start=1):
            if name in _names(band):
                found.append((_rank(key, asset, name, len(bands)), key, number))
        if key.lower() == name and len(bands) <= 1 and not any(k == key for _, k, _ in found):
            found.append((_rank(key, asset, name, 1), key, 1))
    return min(found)[1:] if found else None


def _visual(item) -> str | None:
    if "visual" in item.assets and _is_raster("visual", item.assets["visual"]):
        return "visual"
    for key, asset in item.assets.items():
        if "visual" in (asset.roles or []) and _is_raster(key, asset):
            return key
    return None


def _href(item, key: str, label: str) -> str:
    href = item.assets[key].get_absolute_href()
    if href is None:
        raise SceneError(f"{label}: asset {key!r} has a relative href and the item no location")
    return href


def item_parts(
    item, *, asset: str | None = None, bands=None, label: str | None = None
) -> tuple[str, list[tuple[str, tuple[int, ...] | None]]]:
    """``(label, [(file location, its bands or None), ...])`` of a STAC item (see the module):
    one part (a file, its bands by number or by the RGB rule) or one part per band.
    ``label``: how messages name the item (default: its location, else its id)."""
    label = label or item.get_self_href() or f"STAC item {item.id}"
    assets = ", ".join(item.assets) or "none"
    names = [b for b in bands or () if isinstance(b, str)]
    if names and len(names) != len(bands):
        raise SceneError(f"{label}: --bands mixes names and numbers ({bands})")
    if names and len(names) != 3:
        raise SceneError(f"{label}: --bands needs three band names, such as red,green,blue")
    if asset is not None:
        if asset not in item.assets:
            raise SceneError(f"{label}: no asset {asset!r} (its assets: {assets})")
        if not names:
            return label, [(_href(item, asset, label), None if bands is None else tuple(bands))]
        listed = [_names(b) for b in _bands_of(item.assets[asset])]
        numbers = []
        for name in names:
            match = [i for i, n in enumerate(listed, start=1) if name.lower() in n]
            if not match:
                raise SceneError(f"{label}: asset {asset!r} has no band {name!r}")
            numbers.append(match[0])
        return label, [(_href(item, asset, label), tuple(numbers))]
    if bands is not None and not names:  # numbers: bands of the item's visual asset
        key = _visual(item)
        if key is None:
            raise SceneError(
                f"{label}: band numbers need one asset; choose it with --asset (assets: {assets})"
            )
        return label, [(_href(item, key, label), tuple(bands))]
    if not names:
        key = _visual(item)
        if key is not None:
            return label, [(_href(item, key, label), None)]
        names = ["red", "green", "blue"]
        defaulted = True
    else:
        defaulted = False
    parts = []
    for name in names:
        found = _find_band(item, name)
        if found is None:
            if defaulted:
                raise SceneError(
                    f"{label}: no usable asset: no 'visual' asset and no red, green and blue "
                    f"bands (assets: {assets}); choose one with --asset NAME, or bands with "
                    "--bands NAME,NAME,NAME"
                )
            raise SceneError(f"{label}: no band named {name!r} in its assets ({assets})")
        key, number = found
        parts.append((_href(item, key, label), (number,)))
    if len({href for href, _ in parts}) == 1:  # e.g. three bands of one asset
        return label, [(parts[0][0], tuple(b for _, (b,) in parts))]
    return label, parts
