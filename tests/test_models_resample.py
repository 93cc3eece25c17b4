"""Pillow-exact resizing: the integer torch passes and the threaded Pillow path against PIL."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from selo.models._torch import ImageTransform  # noqa: E402
from selo.models.resample import pil_coefficients, pil_resize, resize_like_pil  # noqa: E402

PIL_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}

SIZES = [
    pytest.param((256, 256), (224, 224), id="clip-256-to-224"),
    pytest.param((256, 256), (336, 336), id="upscale"),
    pytest.param((300, 200), (224, 149), id="non-square-down"),
    pytest.param((97, 133), (224, 306), id="odd-up"),
    pytest.param((768, 512), (224, 149), id="strong-down"),
    pytest.param((256, 256), (256, 100), id="width-only"),
    pytest.param((200, 256), (64, 256), id="height-only"),
    pytest.param((1, 5), (3, 2), id="tiny"),
]


def pil_reference(images: np.ndarray, size: tuple[int, int], filter: str) -> np.ndarray:
    h, w = size
    return np.stack(
        [np.asarray(Image.fromarray(i).resize((w, h), PIL_FILTERS[filter])) for i in images]
    )


def random_windows(shape: tuple[int, int], n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape, 3), dtype=np.uint8)


@pytest.mark.parametrize("filter", ["bicubic", "bilinear"])
@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_integer_passes_equal_pillow_byte_for_byte(shape, size, filter):
    windows = random_windows(shape)
    got = resize_like_pil(torch.from_numpy(windows).permute(0, 3, 1, 2), size, filter)
    np.testing.assert_array_equal(
        got.permute(0, 2, 3, 1).numpy(), pil_reference(windows, size, filter)
    )


@pytest.mark.parametrize("filter", ["bicubic", "bilinear"])
@pytest.mark.parametrize(("shape", "size"), SIZES[:5])
def test_threaded_pillow_path_equals_pillow(shape, size, filter):
    windows = random_windows(shape, n=5, seed=1)
    np.testing.assert_array_equal(
        pil_resize(windows, size, filter), pil_reference(windows, size, filter)
    )


def test_extreme_values_clip_like_pillow():
    """Checkerboards of 0 and 255 overshoot with bicubic weights; both clip to uint8 alike."""
    board = (np.indices((256, 256)).sum(0) % 2 * 255).astype(np.uint8)
    windows = np.repeat(board[None, :, :, None], 3, axis=3)
    got = resize_like_pil(torch.from_numpy(windows).permute(0, 3, 1, 2), (224, 224))
    np.testing.assert_array_equal(
        got.permute(0, 2, 3, 1).numpy(), pil_reference(windows, (224, 224), "bicubic")
    )


def test_coefficients_are_pillows_fixed_point_weights():
    idx, w = pil_coefficients(256, 224, "bicubic")
    assert idx.shape == w.shape == (224, 7) and w.dtype == np.int32
    # each output's weights sum to 1.0 in 22-bit fixed point, up to the per-tap rounding
    assert np.abs(w.sum(axis=1) - (1 << 22)).max() <= 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_transform_on_cuda_equals_cpu():
    windows = random_windows((256, 256), n=8)
    t = ImageTransform(224, 224)
    assert torch.equal(t(windows, "cuda").cpu(), t(windows, "cpu"))


def test_transform_with_the_device_path_equals_the_cpu_path(monkeypatch):
    """The integer passes (what CUDA runs) and Pillow in threads give the same model input."""
    import selo.models._torch as mt

    windows = random_windows((256, 256), n=4)
    t = ImageTransform(224, 224)
    cpu = t(windows, "cpu")
    monkeypatch.setattr(mt, "pil_resize", lambda *a: pytest.fail("pil path used"))
    monkeypatch.setattr(mt, "_PILLOW_DEVICES", ())
    other = t(windows, "cpu")
    assert torch.equal(cpu, other)


def test_bilinear_transform_equals_hugging_face_clip_processor():
    """hf-clip folders with ``resample: 2``: PIL bilinear, then transformers' floor-centred crop."""
    transformers = pytest.importorskip("transformers")
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    proc = transformers.CLIPImageProcessor(
        size={"shortest_edge": 75},
        crop_size={"height": 64, "width": 64},
        resample=2,
        image_mean=list(mean),
        image_std=list(std),
    )
    windows = random_windows((256, 200), n=2, seed=3)
    expected = proc(list(windows), return_tensors="np")["pixel_values"]
    t = ImageTransform(75, 64, mean=mean, std=std, interpolation="bilinear", crop_offset="floor")
    got = t(windows, "cpu").numpy()
    assert got.shape == expected.shape
    # one grey level is ~0.013 here: agreement to 1e-5 means the same pixels
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_squash_resizes_both_sides_like_torchvision_resize_pair():
    windows = random_windows((300, 200), n=2)
    t = ImageTransform(256, 256, resize_mode="squash", interpolation="bilinear")
    pixels = pil_reference(windows, (256, 256), "bilinear")
    expected = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(t.mean).view(1, 3, 1, 1)
    std = torch.tensor(t.std).view(1, 3, 1, 1)
    assert torch.equal(t(windows, "cpu"), expected.sub(mean).div(std))
    assert t.tag.endswith("-squash")
