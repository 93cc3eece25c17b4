"""hf-clip encoders: a tiny Hugging Face CLIP folder with random weights, loaded offline."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tiny_clip import make_hf_clip_dir, smooth_windows  # noqa: E402

from selo.errors import CheckpointError, ModelError  # noqa: E402
from selo.models import get_encoder  # noqa: E402
from selo.models.hfclip import hf_transform  # noqa: E402

TEXTS = ["green trees", "a white plane parked on a gray airport", "gray roofs"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_hf_clip_dir(tmp_path_factory.mktemp("hf") / "tiny-clip")


@pytest.fixture(scope="module")
def encoder(model_dir):
    return get_encoder(f"hf-clip:{model_dir}", device="cpu")


@pytest.fixture(scope="module")
def reference(model_dir):
    model = transformers.CLIPModel.from_pretrained(model_dir, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    processor = transformers.CLIPImageProcessor.from_pretrained(model_dir, local_files_only=True)
    return model, tokenizer, processor


def _features(out):
    """transformers 4 returns a tensor, 5 an output object with the projected pooler_output."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_text_embeddings_equal_transformers(encoder, reference):
    model, tokenizer, _ = reference
    batch = tokenizer(TEXTS, padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        ref = _features(model.get_text_features(**batch))
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), ref, atol=1e-5)


def test_image_embeddings_match_the_image_processor(encoder, reference):
    model, _, processor = reference
    windows = smooth_windows(3)
    pixels = processor(images=list(windows), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref = _features(model.get_image_features(pixel_values=pixels))
    ref = torch.nn.functional.normalize(ref, dim=-1).numpy()
    cos = np.sum(encoder.encode_images(windows) * ref, axis=1)
    assert cos.min() > 0.999, cos


def test_shapes_norms_determinism_and_version(model_dir, encoder):
    windows = smooth_windows(4)
    img = encoder.encode_images(windows)
    txt = encoder.encode_texts(TEXTS)
    assert img.shape == (4, 32) and txt.shape == (3, 32)
    assert img.dtype == txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(img, encoder.encode_images(windows))
    assert (encoder.input_size, encoder.embed_dim, encoder.device) == (256, 32, "cpu")
    assert encoder.name == f"hf-clip:{model_dir}"
    assert encoder.version.startswith("hf-clip:tiny-clip@")
    assert encoder.version.endswith("+pre64-bicubic-pil")
    assert encoder.check_query("green trees") is None
    assert "at most 77" in encoder.check_query("gray " * 100)
    assert encoder.too_long("green trees") is None  # what selo serve refuses
    assert "at most 77" in encoder.too_long("gray " * 100)


def test_version_changes_with_the_weights(model_dir, encoder, tmp_path):
    other = make_hf_clip_dir(tmp_path / "tiny-clip", seed=1)
    again = get_encoder(f"hf-clip:{other}")
    assert again.version != encoder.version
    assert again.version.split("+")[1] == encoder.version.split("+")[1]


def test_without_preprocessor_config_uses_clip_defaults(model_dir, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare)
    (bare / "preprocessor_config.json").unlink()
    t = hf_transform(bare, 64)
    assert (t.resize, t.crop, t.interpolation) == (64, 64, "bicubic")
    assert t.mean == (0.48145466, 0.4578275, 0.40821073)
    assert get_encoder(f"hf-clip:{bare}").encode_images(smooth_windows(1)).shape == (1, 32)


def test_preprocessor_config_is_honoured(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "size": {"shortest_edge": 72},
                "crop_size": {"height": 64, "width": 64},
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.25, 0.25, 0.25],
                "resample": 2,
            }
        )
    )
    t = hf_transform(tmp_path, 224)
    assert (t.resize, t.crop, t.mean, t.std, t.interpolation) == (
        72,
        64,
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        "bilinear",
    )
    assert t.tag.startswith("pre72c64-bilinear-pil-cropfloor-")


def _copy_without(model_dir, tmp_path, *names):
    d = tmp_path / "partial"
    shutil.copytree(model_dir, d)
    for n in names:
        (d / n).unlink()
    return d


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match=r"no such model directory: .*nowhere"):
        get_encoder(f"hf-clip:{tmp_path / 'nowhere'}")


def test_folder_without_config(model_dir, tmp_path):
    d = _copy_without(model_dir, tmp_path, "config.json")
    with pytest.raises(CheckpointError, match=r"partial has no config\.json"):
        get_encoder(f"hf-clip:{d}")


def test_folder_without_weights(model_dir, tmp_path):
    d = _copy_without(model_dir, tmp_path, "model.safetensors")
    with pytest.raises(CheckpointError, match="has no weights"):
        get_encoder(f"hf-clip:{d}")


def test_folder_of_another_model_type(model_dir, tmp_path):
    d = _copy_without(model_dir, tmp_path)
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "model_type": "siglip"}))
    with pytest.raises(ModelError, match="model_type 'siglip', expected 'clip'"):
        get_encoder(f"hf-clip:{d}")


def test_weights_that_do_not_fit_the_config(model_dir, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    d = _copy_without(model_dir, tmp_path)
    state = safetensors_torch.load_file(d / "model.safetensors")
    state = {k: v for k, v in state.items() if not k.startswith("visual_projection")}
    state["extra.weight"] = torch.zeros(2)
    safetensors_torch.save_file(state, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"1 missing keys \(visual_projection.weight\)"):
        get_encoder(f"hf-clip:{d}")
