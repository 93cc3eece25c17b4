"""The ``color`` encoder: a weight-free colour-vocabulary baseline (the default).

Both sides are mapped onto the same small vocabulary of named colour
prototypes (:data:`PROTOTYPES`, fixed sRGB values converted to CIE Lab):

- **Query → vector.** The colour words of the sentence, found by
  :func:`query_colours`: synonyms (``grey`` → gray, ``navy`` → dark blue,
  ``tan`` → tawny, ...), ``-ish`` forms, compounds written as one word
  (``grayblack`` → gray + black, ``bluegray``, ``darkgreen``, ``whiteroofed`` →
  white), and the modifiers ``dark``/``deep`` and ``light``/``pale``, which move
  the next colour to its dark or light prototype (``dark blue`` → dark blue).
  The first mentioned colour usually names the subject ("a *white* plane on a
  gray apron"), so it weighs :data:`SUBJECT_WEIGHT` and later ones
  :data:`CONTEXT_WEIGHT`; a word's colours share its weight. A sentence with no
  colour word gets the flat vector and :meth:`ColorEncoder.check_query` says so.
- **Window → vector.** Every pixel colour is converted to Lab (OpenCV) and
  softly assigned to the prototypes: weight ∝ exp(−ΔE / T), ΔE the
  Euclidean Lab distance and T = :data:`TEMPERATURE` ΔE units (a prototype 8 ΔE
  farther away gets e⁻¹ of the weight). The window's colour distribution h is
  the mean assignment over its pixels, and its embedding is √h, which has unit
  length because h sums to one. For speed, pixels are binned into 32 levels
  per channel and each of the 32³ cells uses the assignment of its centre
  colour, computed once (the centre is at most 4 levels per channel away).

The score of a window is then Σₖ qₖ·√hₖ / ‖q‖: for a one-colour query, the
square root of the share of the window in that colour, whatever the rest of
the window looks like (for a query with several colours, the Bhattacharyya
coefficient of the window's colour distribution and q², normalised).
Windows are read at :data:`COLOR_INPUT_SIZE` pixels a side, because colour
shares barely change with resolution and 64² pixels keep it fast. It is a
real, weak baseline: it knows colours, not objects.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence

import cv2
import numpy as np

from ..errors import ParameterError
from .base import Encoder, as_nhwc, l2_normalize

__all__ = [
    "COLOR_INPUT_SIZE",
    "CONTEXT_WEIGHT",
    "PROTOTYPES",
    "SUBJECT_WEIGHT",
    "TEMPERATURE",
    "ColorEncoder",
    "load_color",
    "query_colours",
]

COLOR_INPUT_SIZE = 64
"""Window side the pipeline hands to the colour encoder."""

TEMPERATURE = 8.0
"""Softness of the pixel → prototype assignment, in ΔE (CIE76) units."""

SUBJECT_WEIGHT = 1.0
"""Weight of the first colour named in a query (usually the subject's)."""

CONTEXT_WEIGHT = 0.5
"""Weight of every later colour."""

PROTOTYPES: dict[str, tuple[int, int, int]] = {
    "white": (240, 240, 240),
    "light gray": (185, 185, 185),
    "gray": (128, 128, 128),
    "dark gray": (75, 75, 75),
    "black": (25, 25, 25),
    "red": (180, 50, 45),
    "dark red": (110, 30, 30),
    "pink": (225, 150, 170),
    "orange": (225, 125, 45),
    "yellow": (225, 200, 70),
    "tawny": (195, 165, 115),
    "brown": (120, 90, 60),
    "light green": (140, 185, 95),
    "green": (70, 125, 60),
    "dark green": (35, 70, 40),
    "cyan": (70, 175, 185),
    "light blue": (135, 180, 225),
    "blue": (45, 90, 170),
    "dark blue": (25, 45, 85),
    "purple": (115, 65, 145),
}
"""Named colour prototypes (sRGB), chosen to cover what remote-sensing captions name."""

_WORDS: dict[str, str] = {
    **{w: "white" for w in ("white", "whitish", "snowy")},
    **{w: "light gray" for w in ("silver", "silvery")},
    **{w: "gray" for w in ("gray", "grey", "grayish", "greyish", "ashen")},
    **{w: "dark gray" for w in ("charcoal", "slate")},
    **{w: "black" for w in ("black", "blackish")},
    **{w: "red" for w in ("red", "reddish", "crimson", "scarlet")},
    **{w: "dark red" for w in ("maroon", "burgundy")},
    **{w: "pink" for w in ("pink", "pinkish")},
    **{w: "orange" for w in ("orange", "orangish")},
    **{w: "yellow" for w in ("yellow", "yellowish", "golden")},
    **{w: "tawny" for w in ("tawny", "tan", "khaki", "beige", "sandy")},
    **{w: "brown" for w in ("brown", "brownish", "ochre", "rusty")},
    **{w: "green" for w in ("green", "greenish", "verdant", "emerald")},
    **{w: "dark green" for w in ("olive",)},
    **{w: "cyan" for w in ("cyan", "turquoise", "teal")},
    **{w: "blue" for w in ("blue", "bluish", "blueish", "azure")},
    **{w: "dark blue" for w in ("navy",)},
    **{w: "purple" for w in ("purple", "purplish", "violet")},
}

_MODIFIERS: dict[str, dict[str, str]] = {
    "dark": {
        "white": "light gray",
        "light gray": "gray",
        "gray": "dark gray",
        "red": "dark red",
        "orange": "brown",
        "tawny": "brown",
        "green": "dark green",
        "blue": "dark blue",
        "cyan": "dark blue",
    },
    "light": {
        "black": "dark gray",
        "dark gray": "gray",
        "gray": "light gray",
        "red": "pink",
        "brown": "tawny",
        "green": "light green",
        "blue": "light blue",
    },
}
_MODIFIER_WORDS = {"dark": "dark", "deep": "dark", "light": "light", "pale": "light"}

# Longest terms first, so "grayish" wins over "gray" and "darkgreen" splits as dark + green.
_TERMS = sorted([*_WORDS, *_MODIFIER_WORDS], key=len, reverse=True)
# A compound may end in other letters ("whiteroofed") after a colour of four or
# more letters, or after any colour when they are one of these ("redroofed");
# so "tank" is not tan + k and "redundant" not red + undant.
_MIN_PREFIX = 4
_SUFFIXES = frozenset({"roof", "roofs", "roofed", "top", "tops", "topped"})

_NAMES = tuple(PROTOTYPES)
_INDEX = {n: i for i, n in enumerate(_NAMES)}


def _split(word: str) -> tuple[list[str], str]:
    """Leading colour terms of ``word`` (longest first) and the unmatched rest."""
    terms: list[str] = []
    rest = word
    while rest:
        term = next((t for t in _TERMS if rest.startswith(t)), None)
        if term is None:
            break
        terms.append(term)
        rest = rest[len(term) :]
    return terms, rest


def _word_terms(word: str) -> list[str]:
    """The colour terms a word contributes: the whole word, or a compound of terms."""
    if word in _WORDS or word in _MODIFIER_WORDS:
        return [word]
    terms, rest = _split(word)
    if not terms or terms[-1] in _MODIFIER_WORDS and rest:
        return []  # "lighthouse", "darkness"
    if rest and len(terms[-1]) < _MIN_PREFIX and rest not in _SUFFIXES:
        return []
    return terms


def query_colours(text: str) -> dict[str, float]:
    """Prototype name → weight for the colours named in ``text`` (empty if none).

    >>> query_colours("a white plane parked on a dark gray apron")
    {'white': 1.0, 'dark gray': 0.5}
    """
    weights: dict[str, float] = {}
    modifier: str | None = None
    for word in re.findall(r"[a-z]+", text.lower()):
        terms = _word_terms(word)
        if not terms:
            modifier = None  # a modifier only reaches the next word
            continue
        found: list[str] = []
        for term in terms:
            if term in _MODIFIER_WORDS:
                modifier = _MODIFIER_WORDS[term]
                continue
            colour = _WORDS[term]
            if modifier is not None:
                colour = _MODIFIERS[modifier].get(colour, colour)
                modifier = None
            found.append(colour)
        if not found:
            continue
        weight = SUBJECT_WEIGHT if not weights else CONTEXT_WEIGHT
        for colour in found:
            weights[colour] = max(weights.get(colour, 0.0), weight)
    return weights


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB pixels (..., 3) as float32 CIE Lab (L in 0..100), shape (P, 3)."""
    flat = rgb.reshape(-1, 1, 3).astype(np.float32) * np.float32(1 / 255)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(-1, 3)


def _soft_assign(lab: np.ndarray) -> np.ndarray:
    """P×K weights exp(−ΔE/T) of Lab colours to the prototypes, rows summing to one."""
    proto = _to_lab(np.array(list(PROTOTYPES.values()), dtype=np.uint8))
    dist = np.linalg.norm(lab[:, None, :] - proto[None, :, :], axis=-1)
    p = np.exp((dist.min(axis=1, keepdims=True) - dist) / TEMPERATURE)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


_BITS = 5  # colour cells per channel: 2**5; cell centres are ≤ 4 levels from any pixel
_CELLS = 1 << (3 * _BITS)


@functools.cache
def _cell_table() -> np.ndarray:
    """Soft assignment of the centre colour of each of the 32³ RGB cells (32768 × K)."""
    step = 256 >> _BITS
    centres = np.arange(step // 2, 256, step, dtype=np.uint8)
    r, g, b = np.meshgrid(centres, centres, centres, indexing="ij")
    return _soft_assign(_to_lab(np.stack([r, g, b], axis=-1)))


def _colour_shares(windows: np.ndarray) -> np.ndarray:
    """Mean soft assignment of each window's pixels to the prototypes (n × K, rows sum to 1).

    Pixels are binned into 32³ RGB cells (one ``bincount`` for the whole batch)
    and each cell contributes its precomputed assignment, so the cost per pixel
    is a few integer operations.
    """
    n = len(windows)
    q = (windows >> (8 - _BITS)).astype(np.intp)
    cells = (q[..., 0] << (2 * _BITS)) | (q[..., 1] << _BITS) | q[..., 2]
    cells = cells.reshape(n, -1) + np.arange(n)[:, None] * _CELLS
    counts = np.bincount(cells.ravel(), minlength=n * _CELLS).reshape(n, _CELLS)
    return (counts.astype(np.float32) @ _cell_table()) / np.float32(cells.shape[1])


class ColorEncoder(Encoder):
    """Colour words of the query vs colour shares of the window (see the module docstring).

    ``batch_size`` windows are binned at a time (16 keeps the bin counts in cache).
    """

    name = "color"
    input_size = COLOR_INPUT_SIZE
    embed_dim = len(PROTOTYPES)
    device = "cpu"

    def __init__(self, *, batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ParameterError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size

    @property
    def version(self) -> str:
        table = repr((PROTOTYPES, TEMPERATURE, SUBJECT_WEIGHT, CONTEXT_WEIGHT)).encode()
        return f"color-v1-{hashlib.sha256(table).hexdigest()[:8]}"

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        windows = as_nhwc(images)
        out = np.empty((len(windows), self.embed_dim), dtype=np.float32)
        for i in range(0, len(windows), self.batch_size):
            out[i : i + self.batch_size] = np.sqrt(_colour_shares(windows[i : i + self.batch_size]))
        return l2_normalize(out)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.ones((len(texts), self.embed_dim), dtype=np.float32)
        for row, text in zip(out, texts, strict=True):
            weights = query_colours(text)
            if weights:
                row[:] = 0
                for colour, w in weights.items():
                    row[_INDEX[colour]] = w
        return l2_normalize(out)

    def check_query(self, text: str) -> str | None:
        if query_colours(text):
            return None
        return (
            f"the color encoder found no colour word in {text!r}, so every window scores "
            "by its colour variety alone; name a colour (e.g. 'green trees') or use a "
            "CLIP-family model (see `selo models`)"
        )


def load_color(
    argument: str = "", *, name: str | None = None, device=None, precision=None
) -> ColorEncoder:
    """The ``color`` encoder, as the registry loads every kind (it has no argument and no
    weights, and runs on the CPU in float32 whatever ``device`` and ``precision`` say)."""
    return ColorEncoder()
