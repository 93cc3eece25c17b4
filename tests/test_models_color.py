"""The weight-free ``color`` encoder: query parsing, colour shares, rankings, AIR-SLT coverage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selo.models.color import (
    COLOR_INPUT_SIZE,
    CONTEXT_WEIGHT,
    PROTOTYPES,
    SUBJECT_WEIGHT,
    ColorEncoder,
    query_colours,
)

ANNO = Path(__file__).resolve().parents[1] / "selo_tasks" / "data" / "air-slt" / "anno.json"
S = COLOR_INPUT_SIZE


@pytest.fixture(scope="module")
def enc():
    return ColorEncoder()


def window(rgb, *, noise=12, seed=0, size=S):
    """A uint8 window of one colour with a little sensor noise."""
    rng = np.random.default_rng(seed)
    w = np.asarray(rgb, np.float64) + rng.normal(0, noise, (size, size, 3))
    return np.clip(w, 0, 255).astype(np.uint8)


def with_object(background, obj, share, *, noise=12, seed=0):
    """A window of ``background`` with a centred square of ``obj`` covering ``share`` of it."""
    w = window(background, noise=noise, seed=seed)
    side = int(round(S * share**0.5))
    o = (S - side) // 2
    w[o : o + side, o : o + side] = window(obj, noise=noise, seed=seed + 1)[:side, :side]
    return w


def scores(enc, query, windows):
    return enc.encode_images(np.stack(windows)) @ enc.encode_texts([query])[0]


VEGETATION = (62, 105, 50)
ASPHALT = (120, 122, 125)
ROOF_GRAY = (150, 150, 152)
WHITE = (235, 235, 232)
BLACK = (22, 24, 26)
DEEP_WATER = (28, 45, 80)
SKY_WATER = (130, 175, 220)
TRACK_RED = (175, 60, 50)
BARE_SOIL = (190, 160, 112)


@pytest.mark.parametrize(
    ("query", "better", "worse"),
    [
        ("green trees", window(VEGETATION), window(ASPHALT)),
        ("gray roofs", window(ROOF_GRAY), window(VEGETATION)),
        # the pair, and the same with grey spelt the British way
        ("grey roofs", window(ROOF_GRAY), window(VEGETATION)),
        (
            "a white plane parked on a gray airport",
            with_object(ASPHALT, WHITE, 0.2),
            with_object(BLACK, WHITE, 0.2),
        ),
        (
            "a white plane parked on a gray airport",
            with_object(ASPHALT, WHITE, 0.2),
            window(ASPHALT),
        ),
        ("a bridge spans a dark blue river", window(DEEP_WATER), window(SKY_WATER)),
        ("a light blue pool", window(SKY_WATER), window(DEEP_WATER)),
        (
            "green soccer field surrounded by red running track",
            with_object(TRACK_RED, VEGETATION, 0.5),
            window(VEGETATION, seed=3),
        ),
        (
            "a white plane parked in a tawny clearing",
            with_object(BARE_SOIL, WHITE, 0.2),
            with_object(VEGETATION, WHITE, 0.2),
        ),
        ("ships on the black sea", window(BLACK), window(DEEP_WATER)),
        (
            "a white airplane on a grayblack runway",
            with_object(ASPHALT, WHITE, 0.2),
            with_object(VEGETATION, WHITE, 0.2),
        ),
    ],
)
def test_rankings(enc, query, better, worse):
    good, bad = scores(enc, query, [better, worse])
    assert good > bad + 0.05, (good, bad)


def test_one_colour_score_is_the_root_of_its_share(enc):
    """For 'green' alone the score is √(green share), whatever the rest of the window is."""
    pure = window(PROTOTYPES["green"], noise=0)
    half_gray = with_object(PROTOTYPES["gray"], PROTOTYPES["green"], 0.5, noise=0)
    half_red = with_object(PROTOTYPES["red"], PROTOTYPES["green"], 0.5, noise=0)
    s_pure, s_gray, s_red = scores(enc, "green", [pure, half_gray, half_red])
    assert s_gray == pytest.approx(s_red, abs=0.03)
    assert s_gray == pytest.approx(s_pure * 0.5**0.5, abs=0.03)


@pytest.mark.parametrize("name", list(PROTOTYPES))
def test_each_prototype_colour_lands_mostly_on_itself(enc, name):
    emb = enc.encode_images(window(PROTOTYPES[name], noise=0)[None])[0]
    shares = emb**2
    assert np.argmax(shares) == list(PROTOTYPES).index(name)
    assert shares.max() > 0.7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("green trees", {"green": SUBJECT_WEIGHT}),
        ("Grey road", {"gray": SUBJECT_WEIGHT}),
        ("a white plane on a gray apron", {"white": SUBJECT_WEIGHT, "gray": CONTEXT_WEIGHT}),
        ("a bridge spans a dark blue river", {"dark blue": SUBJECT_WEIGHT}),
        ("dark green lake, green trees", {"dark green": SUBJECT_WEIGHT, "green": CONTEXT_WEIGHT}),
        ("a darkgreen pond", {"dark green": SUBJECT_WEIGHT}),
        ("light-green grass", {"light green": SUBJECT_WEIGHT}),
        ("pale blue", {"light blue": SUBJECT_WEIGHT}),
        ("deep blue sea", {"dark blue": SUBJECT_WEIGHT}),
        # compounds written as one word share the word's weight
        ("a white plane on a grayblack runway", {"white": 1.0, "gray": 0.5, "black": 0.5}),
        ("two bluegray buildings", {"blue": SUBJECT_WEIGHT, "gray": SUBJECT_WEIGHT}),
        ("two whiteroofed houses", {"white": SUBJECT_WEIGHT}),
        ("redroofed houses", {"red": SUBJECT_WEIGHT}),
        ("blue-gray water", {"blue": SUBJECT_WEIGHT, "gray": CONTEXT_WEIGHT}),
        ("reddish soil", {"red": SUBJECT_WEIGHT}),
        ("a tawny clearing", {"tawny": SUBJECT_WEIGHT}),
        ("a navy ship on khaki sand", {"dark blue": 1.0, "tawny": 0.5}),
        # a repeated colour keeps its highest weight
        ("green lakes in green lawns, gray paths", {"green": 1.0, "gray": 0.5}),
        # modifiers reach only the next word, and need a colour
        ("dark and blue", {"blue": SUBJECT_WEIGHT}),
        ("a lighthouse near green fields", {"green": SUBJECT_WEIGHT}),
        ("darkness", {}),
        # words that merely start like a colour
        ("oil tanks and a tanker", {}),
        ("a redundant road", {}),
        ("the parking lot is full of cars", {}),
    ],
)
def test_query_colours(text, expected):
    assert query_colours(text) == expected


def _airslt_captions() -> list[str]:
    return [case["caption"] for case in json.loads(ANNO.read_text())]


COLOUR = r"(gr[ae]y|green|white|black|red|blue|cyan|yellow|tawny|brown|orange)"


def colour_stems(text: str) -> set[str]:
    """Colour stems in the words that start with one ("grayblack" -> gray, black)."""
    words = [w for w in re.findall(r"[a-z]+", text.lower()) if re.match(COLOUR, w)]
    return {s.replace("grey", "gray") for w in words for s in re.findall(COLOUR, w)}


def test_every_airslt_colour_word_is_recognised(enc):
    """Each caption that names a colour gets a non-flat query, and every named colour counts."""
    captions = _airslt_captions()
    assert len(captions) == 59
    colourless = []
    for caption in captions:
        named = colour_stems(caption)
        weights = query_colours(caption)
        if not named:
            colourless.append(caption.strip())
            assert weights == {}
            assert enc.check_query(caption) is not None
            continue
        assert weights, caption
        assert enc.check_query(caption) is None
        found = {w.split()[-1] for w in weights}  # "dark blue" -> "blue"
        assert named == found, caption
    assert colourless == [
        "some vegetation grows sporadically on the bare land divided by the road.",
        "the parking lot next to the football field is full of cars.",
    ]


def test_query_without_colour_is_flat_and_warned(enc):
    v = enc.encode_texts(["the parking lot next to the football field is full of cars."])[0]
    np.testing.assert_allclose(v, np.full(len(PROTOTYPES), len(PROTOTYPES) ** -0.5), rtol=1e-6)
    assert enc.too_long("white " * 5000) is None  # colour words: any length is read
    warning = enc.check_query("cars in a parking lot")
    assert "no colour word" in warning and "cars in a parking lot" in warning


def test_shapes_norms_and_attributes(enc):
    images = enc.encode_images(np.stack([window(VEGETATION, seed=i) for i in range(5)]))
    texts = enc.encode_texts(["green trees", "gray roofs", "cars"])
    assert images.shape == (5, len(PROTOTYPES)) and texts.shape == (3, len(PROTOTYPES))
    assert images.dtype == texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-6)
    assert (enc.name, enc.input_size, enc.embed_dim, enc.device) == ("color", 64, 20, "cpu")
    assert re.fullmatch(r"color-v1-[0-9a-f]{8}", enc.version)
    assert enc.encode_images(np.zeros((0, S, S, 3), np.uint8)).shape == (0, len(PROTOTYPES))
    assert enc.encode_texts([]).shape == (0, len(PROTOTYPES))


def test_deterministic_batch_independent_any_size_and_nchw():
    rng = np.random.default_rng(1)
    windows = rng.integers(0, 256, (9, 40, 40, 3), dtype=np.uint8)
    whole = ColorEncoder(batch_size=64).encode_images(windows)
    np.testing.assert_array_equal(whole, ColorEncoder(batch_size=64).encode_images(windows))
    np.testing.assert_allclose(ColorEncoder(batch_size=2).encode_images(windows), whole, atol=1e-6)
    nchw = np.ascontiguousarray(windows.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(ColorEncoder().encode_images(nchw), whole)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=3, max_size=3), st.integers(1, 4))
def test_image_embeddings_are_unit_nonnegative(rgb, n):
    emb = ColorEncoder().encode_images(np.broadcast_to(np.uint8(rgb), (n, 8, 8, 3)))
    assert (emb >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gives_weights_from_the_two_levels(text):
    weights = query_colours(text)
    assert set(weights) <= set(PROTOTYPES)
    assert set(weights.values()) <= {SUBJECT_WEIGHT, CONTEXT_WEIGHT}
