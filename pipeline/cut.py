"""Cut: window pixels cropped from the scene and resized for the encoder.

Windows are grouped by the strip of rows holding their top edge; each strip's
region is the bounding box of its windows (usually full-width rows), and its
batches crop their windows from it as views. Strips are as tall as a memory budget
allows (4096 rows for a 10,000-pixel-wide scene, 1024 at 40,000), so memory is
bounded by a strip, whatever the scene's height.

A region reaches below its strip by the tallest window (up to 768 rows by default),
into the next strip's rows, so regions read apart would decode those rows twice
(every pixel about 1.7 times at 40,000 pixels wide). :func:`plan_region_reads` chains
the regions instead: each region takes the rows it shares with the region before
from that region (a copy, cheaper than decoding them again) and reads only the rows
below (:func:`carry_region`, one windowed read of the file into the region, see
:func:`selo.pipeline.scene.region_reader`), and regions end at the source's block
edges, so that every block is decoded once. A scene's regions form one chain by
default: its reads run in order, each region's crops and embeddings beside the next
read. Each window is resized to ``size`` × ``size`` with OpenCV's
bicubic interpolation (no antialiasing), as the published code does; :class:`CutSpec`
says how, and its ``key`` is the part of the embedding cache key that follows the cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import DEFAULT_BATCH
from .windows import WindowTable

__all__ = [
    "Batch",
    "CutSpec",
    "plan_batches",
    "RegionRead",
    "plan_region_reads",
    "carry_region",
    "crop_batch",
    "jpeg_bytes",
    "jpeg_round_trip",
    "MIN_VALID_FRACTION",
]

# A window whose pixels are all nodata is not embedded (it has nothing to show).
MIN_VALID_FRACTION = 0.0
JPEG_QUALITY = 95  # cv2.imwrite's default, which the published code uses


@dataclass(frozen=True)
class CutSpec:
    """How windows become encoder input: resized to ``size`` × ``size`` with OpenCV's
    bicubic interpolation (no antialiasing); with ``jpeg`` each resized window also
    makes the published code's round trip through a JPEG file (quality 95)."""

    size: int
    jpeg: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"the cut size must be a positive number of pixels, got {self.size}")

    @property
    def key(self) -> str:
        """Names everything this cut does (part of the embedding cache key)."""
        return f"cut{self.size}-opencv-bicubic" + (f"-jpeg{JPEG_QUALITY}" if self.jpeg else "")


@dataclass(frozen=True, eq=False)
class Batch:
    """Windows cut together: their rows in the table and the region they are cut from.

    ``bbox`` is the bounding box of all windows of the batch's strip, so the
    batches of one strip share one region.
    """

    index: np.ndarray  # (n,) rows of the window table
    bbox: tuple[int, int, int, int]  # r0, r1, c0, c1 of the strip's region

    def relative(self, table: WindowTable) -> np.ndarray:
        """The batch's windows in coordinates relative to the bounding box."""
        w = table.windows[self.index].copy()
        w[:, :2] -= self.bbox[0]
        w[:, 2:] -= self.bbox[2]
        return w


STRIP_BYTES = 128 * 2**20  # RGB bytes of a strip's own rows (its region adds the overlap)
MIN_STRIP, MAX_STRIP = 256, 4096


def strip_rows(width: int, *, budget: int = STRIP_BYTES) -> int:
    """Rows per strip for a scene ``width`` pixels wide: ``budget / (3 · width)``, clamped
    to 256–4096 and rounded down to a multiple of 256 (the tiles of tiled files)."""
    rows = budget // max(1, 3 * width)
    return int(min(MAX_STRIP, max(MIN_STRIP, rows // 256 * 256)))


def plan_batches(
    table: WindowTable, *, strip: int | None = None, batch: int = DEFAULT_BATCH
) -> list[Batch]:
    """Batches of at most ``batch`` windows, grouped by the strip of their top edge
    (``r0 // strip``; default :func:`strip_rows` of the scene's width).

    Every window is in exactly one batch; batches are ordered by strip, windows inside a
    batch keep table order; all batches of a strip share one region (their strip's
    windows' bounding box)."""
    strip = strip_rows(table.width) if strip is None else strip
    if strip < 1 or batch < 1:
        raise ValueError(f"strip and batch must be positive, got {strip} and {batch}")
    w = table.windows
    band = w[:, 0] // strip
    order = np.lexsort((np.arange(len(w)), band))
    batches = []
    for group in np.split(order, np.flatnonzero(np.diff(band[order])) + 1):
        if not len(group):
            continue
        sel = w[group]
        bbox = (
            int(sel[:, 0].min()),
            int(sel[:, 1].max()),
            int(sel[:, 2].min()),
            int(sel[:, 3].max()),
        )
        for i in range(0, len(group), batch):
            batches.append(Batch(group[i : i + batch], bbox))
    return batches


Box = tuple[int, int, int, int]  # r0, r1, c0, c1, half-open


@dataclass(frozen=True)
class RegionRead:
    """How one region is read: ``box``, the region's bounding box widened to its chain's
    columns and its bottom moved down to a block edge or to the bottom of the region
    before (pixels outside the bounding box are never cropped), of which the top
    ``carried`` rows are copied from the region before and the rest read."""

    box: Box
    carried: int = 0


def plan_region_reads(
    regions: list[Box],
    *,
    height: int,
    strip: int,
    blocks: tuple[int, int] | None = None,
    chain: int | None = None,
) -> list[RegionRead]:
    """How to read ``regions`` (bounding boxes in strip order) so that each pixel is
    decoded once within a chain of at most ``chain`` regions (default: all).

    Consecutive regions that share rows form a chain where the columns the chain would
    have to widen to hold them both cost fewer pixels than the rows they share (full-width
    strips always; boxes side by side never): every region of a chain is read across the
    chain's columns, and takes the rows it shares with the region before from it (all
    of them, to the bottom of that region, which holds all the chain has read below its
    top) and reads only the rows below. ``blocks`` = (first, rows): scene rows
    ``first + k · rows`` begin the source's blocks of rows, which a read decodes whole;
    each region's bottom then moves down to the next block edge (at most ``height``), so
    that the next region's read starts on one and no block is decoded twice (blocks
    taller than ``strip`` are not followed)."""
    if chain is not None and chain < 1:
        raise ValueError(f"chain must be positive, got {chain}")
    if blocks is not None and not 0 < blocks[1] <= strip:
        blocks = None

    def bottom(r1: int) -> int:
        return r1 if blocks is None else min(height, r1 + (blocks[0] - r1) % blocks[1])

    chains: list[list[int]] = []
    top = end = left = right = 0  # the current chain's rows and columns
    for i, (r0, r1, c0, c1) in enumerate(regions):
        if chains and (chain is None or len(chains[-1]) < chain) and top <= r0 < end:
            u0, u1 = min(left, c0), max(right, c1)
            shared = (min(end, r1) - r0) * max(0, min(right, c1) - max(left, c0))
            added = (u1 - u0 - (right - left)) * (end - top) + (u1 - u0 - (c1 - c0)) * (r1 - r0)
            if added <= shared:
                chains[-1].append(i)
                end, left, right = max(end, bottom(r1)), u0, u1
                continue
        chains.append([i])
        top, end, left, right = r0, bottom(r1), c0, c1
    out: list[RegionRead] = []
    for members in chains:
        left = min(regions[i][2] for i in members)
        right = max(regions[i][3] for i in members)
        end = 0
        for n, i in enumerate(members):
            r0, r1 = regions[i][0], max(bottom(regions[i][1]), end)
            out.append(RegionRead((r0, r1, left, right), end - r0 if n else 0))
            end = r1
    return out


def carry_region(
    regions, previous: tuple[np.ndarray, np.ndarray | None], before: Box, read: RegionRead
) -> tuple[np.ndarray, np.ndarray | None]:
    """The region of ``read``: its top ``read.carried`` rows copied from ``previous`` (the
    region read at box ``before``), the rest read from ``regions`` straight into it
    (``regions.into(out, r0, r1, c0, c1)`` where the reader has it, else a call and a
    copy)."""
    rgb_before, valid_before = previous
    r0, r1, c0, c1 = read.box
    k = read.carried
    top, left = r0 - before[0], c0 - before[2]
    rgb = np.empty((r1 - r0, c1 - c0, rgb_before.shape[2]), rgb_before.dtype)
    rgb[:k] = rgb_before[top : top + k, left : left + c1 - c0]
    valid_rest = None
    if k < r1 - r0:
        into = getattr(regions, "into", None)
        if into is not None:
            valid_rest = into(rgb[k:], r0 + k, r1, c0, c1)
        else:
            rest, valid_rest = regions(r0 + k, r1, c0, c1)
            rgb[k:] = rest
    if valid_before is None and valid_rest is None:
        return rgb, None
    valid = np.ones(rgb.shape[:2], bool)
    if valid_before is not None:
        valid[:k] = valid_before[top : top + k, left : left + c1 - c0]
    if valid_rest is not None:
        valid[k:] = valid_rest
    return rgb, valid


def crop_batch(
    rgb: np.ndarray,
    windows: np.ndarray,
    cut: CutSpec | int,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``windows`` (relative r0, r1, c0, c1) from an (h, w, 3) uint8 region.

    Returns (n, size, size, 3) uint8 RGB windows cut as ``cut`` says (a size alone:
    bicubic, no JPEG), and a (n,) bool array: True where the window has data
    (always, without ``valid``). Crops are views of ``rgb`` (OpenCV reads their
    rows in place).
    """
    cut = cut if isinstance(cut, CutSpec) else CutSpec(int(cut))
    size = cut.size
    out = np.empty((len(windows), size, size, 3), dtype=np.uint8)
    has_data = np.ones(len(windows), dtype=bool)
    for i, (r0, r1, c0, c1) in enumerate(np.asarray(windows).tolist()):
        out[i] = cv2.resize(rgb[r0:r1, c0:c1], (size, size), interpolation=cv2.INTER_CUBIC)
        if cut.jpeg:
            out[i] = jpeg_round_trip(out[i])
        if valid is not None:
            has_data[i] = valid[r0:r1, c0:c1].mean() > MIN_VALID_FRACTION
    return out, has_data


def jpeg_bytes(image: np.ndarray) -> bytes:
    """The JPEG file ``cv2.imwrite`` writes for a gray or BGR ``image`` (quality 95)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode an image as JPEG")
    return buf.tobytes()


def jpeg_round_trip(image: np.ndarray, *, reader: str = "pil") -> np.ndarray:
    """``image`` after a trip through a JPEG file as the published code makes it.

    An (h, w, 3) RGB window is written by ``cv2.imwrite`` (as BGR, quality 95) and
    read back by ``PIL.Image.open(...).convert("RGB")`` (the crop files);
    ``reader="opencv"`` decodes with ``cv2.imread`` instead — a 2-D map is written
    and read as 8-bit gray, as the published code stores and scores its maps."""
    gray = image.ndim == 2
    data = jpeg_bytes(image if gray else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if reader == "opencv":
        decoded = cv2.imdecode(
            np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
        )
        return decoded if gray else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("L" if gray else "RGB"))
