"""open_clip encoders: tiny random-weight models saved and loaded back through the registry."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402
from tiny_clip import TINY_RN, TINY_VIT, register_arch, smooth_windows  # noqa: E402

from selo.errors import CheckpointError, ModelError  # noqa: E402
from selo.models import get_encoder  # noqa: E402
from selo.models._torch import ImageTransform, autocast  # noqa: E402
from selo.models.openclip import build_model, encoder_from_model  # noqa: E402

TEXTS = ["green trees", "a white plane parked on a gray airport", "gray roofs"]


@pytest.fixture(scope="module")
def arch(tmp_path_factory):
    return register_arch(tmp_path_factory.mktemp("archs"), "selo-test-vit", TINY_VIT)


@pytest.fixture(scope="module")
def rn_arch(tmp_path_factory):
    return register_arch(tmp_path_factory.mktemp("archs-rn"), "selo-test-rn", TINY_RN)


@pytest.fixture(scope="module")
def model(arch):
    torch.manual_seed(0)
    return build_model(arch)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def encoder(arch, checkpoint):
    return get_encoder(f"openclip:{arch}", checkpoint=checkpoint, device="cpu")


def test_registry_load_equals_in_memory_model(arch, model, encoder):
    windows = smooth_windows()
    mem = encoder_from_model(model, arch=arch, weights="in-memory", device="cpu")
    np.testing.assert_allclose(
        encoder.encode_images(windows), mem.encode_images(windows), atol=1e-6
    )
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), mem.encode_texts(TEXTS), atol=1e-6)


def test_embeddings_equal_open_clip_own_pipeline(model, encoder):
    """The vectors of open_clip's own PIL preprocessing and towers, up to resampling."""
    windows = smooth_windows(3)
    preprocess = open_clip.image_transform(64, is_train=False)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.fromarray(w)) for w in windows])
        ref_img = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy()
        ref_txt = torch.nn.functional.normalize(model.encode_text(tokenizer(TEXTS)), dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), ref_txt, atol=1e-5)
    cos = np.sum(encoder.encode_images(windows) * ref_img, axis=1)
    assert cos.min() > 0.999, cos


def test_shapes_norms_dtype_and_attributes(arch, encoder):
    assert (encoder.name, encoder.input_size, encoder.embed_dim, encoder.device) == (
        f"openclip:{arch}",
        256,
        32,
        "cpu",
    )
    img = encoder.encode_images(smooth_windows(4))
    txt = encoder.encode_texts(TEXTS)
    assert img.shape == (4, 32) and txt.shape == (3, 32)
    assert img.dtype == np.float32 and txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1, atol=1e-5)
    assert encoder.encode_images(np.zeros((0, 256, 256, 3), np.uint8)).shape == (0, 32)


def test_deterministic_batch_independent_and_accepts_nchw(encoder):
    windows = smooth_windows(7)
    first = encoder.encode_images(windows)
    np.testing.assert_array_equal(first, encoder.encode_images(windows))
    encoder.batch_size = 3
    try:
        np.testing.assert_allclose(encoder.encode_images(windows), first, atol=1e-5)
    finally:
        encoder.batch_size = 64
    nchw = np.ascontiguousarray(windows.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(encoder.encode_images(nchw), first, atol=1e-6)


def test_version_names_arch_weights_and_preprocessing(arch, model, encoder, checkpoint, tmp_path):
    assert encoder.version.startswith(f"openclip:{arch}@")
    assert encoder.version.endswith("+pre64-bicubic-pil")
    other = tmp_path / "other.pt"
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["ln_final.bias"] += 1
    torch.save(state, other)
    again = get_encoder(f"openclip:{arch}", checkpoint=other, device="cpu")
    assert again.version != encoder.version
    assert get_encoder(f"openclip:{arch}", checkpoint=checkpoint).version == encoder.version


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: {"state_dict": sd, "epoch": 3}, id="state_dict"),
        pytest.param(lambda sd: {f"module.{k}": v for k, v in sd.items()}, id="module-prefix"),
        pytest.param(
            lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}, id="both"
        ),
        pytest.param(lambda sd: {"model": sd, "optimizer": {}}, id="model"),
    ],
)
def test_wrapped_state_dicts_load(arch, model, encoder, tmp_path, wrap):
    path = tmp_path / "wrapped.pt"
    torch.save(wrap(model.state_dict()), path)
    loaded = get_encoder(f"openclip:{arch}", checkpoint=path, device="cpu")
    np.testing.assert_array_equal(loaded.encode_texts(TEXTS), encoder.encode_texts(TEXTS))


def test_safetensors_checkpoint_loads(arch, model, encoder, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "tiny.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    loaded = get_encoder(f"openclip:{arch}", checkpoint=path, device="cpu")
    np.testing.assert_array_equal(loaded.encode_texts(TEXTS), encoder.encode_texts(TEXTS))


def test_resnet_tower_loads(rn_arch, tmp_path):
    torch.manual_seed(1)
    model = build_model(rn_arch)
    path = tmp_path / "rn.pt"
    torch.save(model.state_dict(), path)
    enc = get_encoder(f"openclip:{rn_arch}", checkpoint=path, device="cpu")
    mem = encoder_from_model(model, arch=rn_arch, weights="x", device="cpu")
    windows = smooth_windows(2)
    np.testing.assert_allclose(enc.encode_images(windows), mem.encode_images(windows), atol=1e-6)


class _Evil:
    """Unpickling this would create a file: the loader must refuse it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_code_is_refused_and_not_run(arch, model, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({**model.state_dict(), "payload": _Evil(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing checkpoint .*evil.pt.*not a plain state"):
        get_encoder(f"openclip:{arch}", checkpoint=path)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_archive_is_refused(arch, tmp_path):
    path = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), path)
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        get_encoder(f"openclip:{arch}", checkpoint=path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param([1, 2, 3], "not a state dict of tensors", id="list"),
        pytest.param({"epoch": 3, "lr": 0.1}, "not a state dict of tensors", id="no-tensors"),
        pytest.param(b"garbage", "cannot read checkpoint", id="garbage"),
    ],
)
def test_unusable_checkpoint_files(arch, tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        get_encoder(f"openclip:{arch}", checkpoint=path)


def test_missing_checkpoint_path(arch, tmp_path):
    with pytest.raises(CheckpointError, match=r"not found: .*nope\.pt"):
        get_encoder(f"openclip:{arch}", checkpoint=tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        get_encoder(f"openclip:{arch}", checkpoint=tmp_path)


def test_wrong_architecture_counts_missing_and_unexpected_keys(arch, rn_arch, tmp_path):
    path = tmp_path / "rn.pt"
    torch.save(build_model(rn_arch).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        get_encoder(f"openclip:{arch}", checkpoint=path)
    msg = str(err.value)
    assert "rn.pt" in msg and f"openclip:{arch}" in msg
    own = build_model(arch).state_dict().keys()
    other = torch.load(path, weights_only=True).keys()
    n_missing = len([k for k in own if k not in other and k != "logit_scale"])
    n_unexpected = len([k for k in other if k not in own and k != "logit_scale"])
    assert f"{n_missing} missing keys" in msg
    assert f"{n_unexpected} unexpected keys" in msg


def test_wrong_shapes_are_reported(arch, model, tmp_path):
    state = dict(model.state_dict())
    state["ln_final.weight"] = torch.ones(5)
    path = tmp_path / "shapes.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 keys with the wrong shape \(ln_final.weight"):
        get_encoder(f"openclip:{arch}", checkpoint=path)


@pytest.mark.parametrize(
    ("arch_name", "message"),
    [
        pytest.param(
            "ViT-B-33", "unknown open_clip architecture.*close matches: ViT-B-32", id="typo"
        ),
        pytest.param("no-such-model", "unknown open_clip architecture", id="unknown"),
        pytest.param("ViT-B-16-SigLIP", "Hugging Face tokenizer", id="hf-tokenizer"),
        pytest.param("coca_ViT-B-32", "CoCa", id="coca"),
    ],
)
def test_unusable_architectures(arch_name, message, checkpoint):
    with pytest.raises(ModelError, match=message):
        get_encoder(f"openclip:{arch_name}", checkpoint=checkpoint)


def test_transform_equals_open_clip_pil_pipeline_exactly():
    """Pillow's pixels, then torchvision's float ops: the very tensor open_clip feeds its model."""
    windows = np.random.default_rng(1).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    for size in (224, 64, 256):
        ref = open_clip.image_transform(size, is_train=False)
        expected = torch.stack([ref(Image.fromarray(w)) for w in windows])
        got = ImageTransform(size, size)(windows, "cpu")
        assert got.shape == expected.shape == (3, 3, size, size)
        assert torch.equal(got, expected), size


def test_transform_crops_non_square_windows_like_torchvision():
    windows = smooth_windows(1)[:, :, :200]  # 256 high, 200 wide
    ref = open_clip.image_transform(64, is_train=False)(Image.fromarray(windows[0]))
    got = ImageTransform(64, 64)(windows, "cpu")[0]
    assert torch.equal(got, ref)


@pytest.mark.filterwarnings("ignore:.*CUDA is not available")
@pytest.mark.parametrize(("bf16", "dtype"), [(True, "bfloat16"), (False, "float16")])
def test_autocast_on_cuda_uses_half_precision(monkeypatch, bf16, dtype):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    ctx = autocast("cuda:0")
    assert isinstance(ctx, torch.autocast)
    assert (ctx.device, ctx.fast_dtype) == ("cuda", getattr(torch, dtype))


def test_autocast_is_a_null_context_on_cpu():
    with autocast("cpu"):
        assert not torch.is_autocast_enabled()
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_autocast_honours_an_explicit_precision_on_cpu():
    with autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
        y = torch.nn.Linear(2, 2)(torch.ones(2, 2))
    assert y.dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")


def test_fp32_on_cuda_turns_tensorfloat32_off_and_back(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    with autocast("cuda:0", "fp32"):
        assert not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
        with autocast("cuda:0", "fp32"):  # nested (another thread): still off
            assert not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.allow_tf32


def test_precision_is_part_of_the_version_unless_fp32(arch, checkpoint, encoder):
    half = get_encoder(f"openclip:{arch}", checkpoint=checkpoint, device="cpu", precision="bf16")
    assert half.precision == "bf16" and half.version == encoder.version + "+bf16"
    assert encoder.precision == "fp32" and not encoder.version.endswith("fp32")
    windows = smooth_windows(3)
    cos = np.sum(half.encode_images(windows) * encoder.encode_images(windows), axis=1)
    assert cos.min() > 0.99 and not np.array_equal(
        half.encode_images(windows), encoder.encode_images(windows)
    )


def test_unknown_precision_is_a_parameter_error(arch, checkpoint):
    from selo.errors import ParameterError
    from selo.models import EncoderSpec

    with pytest.raises(ParameterError, match="fp32, bf16, fp16, int8"):
        EncoderSpec(f"openclip:{arch}", str(checkpoint), precision="fp8")
    with pytest.raises(ParameterError, match="unknown precision"):
        get_encoder(f"openclip:{arch}", checkpoint=checkpoint, precision="int4")


@pytest.fixture(scope="module")
def int8(arch, checkpoint):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    return get_encoder(f"openclip:{arch}", checkpoint=checkpoint, device="cpu", precision="int8")


def test_int8_embeds_windows_close_to_fp32_and_texts_as_fp32(encoder, int8):
    windows = smooth_windows(8)
    fp32, q = encoder.encode_images(windows), int8.encode_images(windows)
    assert q.shape == fp32.shape and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    cos = np.sum(q * fp32, axis=1)
    assert cos.min() >= 0.99 and not np.array_equal(q, fp32), cos
    # a window's embedding does not depend on the other windows of its batch
    np.testing.assert_array_equal(int8.encode_images(windows[2:3]), q[2:3])
    np.testing.assert_array_equal(int8.encode_images(windows[::-1]), q[::-1])
    assert int8.encode_images(windows[:0]).shape == (0, fp32.shape[1])
    # the text tower stays fp32
    np.testing.assert_array_equal(int8.encode_texts(TEXTS), encoder.encode_texts(TEXTS))


def test_int8_is_part_of_the_version(encoder, int8):
    assert int8.precision == "int8" and int8.version == encoder.version + "+int8"


def test_int8_session_is_built_once_per_weights(arch, model, checkpoint, int8):
    """An encoder built again (the session's, then its tasks') reuses the quantized tower;
    other weights under the same version label get their own."""
    again = get_encoder(f"openclip:{arch}", checkpoint=checkpoint, device="cpu", precision="int8")
    assert again._images is int8._images
    torch.manual_seed(1)
    other = build_model(arch)
    a = encoder_from_model(model, arch=arch, weights="same-label", device="cpu", precision="int8")
    b = encoder_from_model(other, arch=arch, weights="same-label", device="cpu", precision="int8")
    assert a._images is not b._images
    windows = smooth_windows(3)
    assert not np.allclose(a.encode_images(windows), b.encode_images(windows), atol=1e-3)


def test_int8_is_refused_on_cuda_before_loading(monkeypatch, arch, tmp_path):
    from selo.errors import ParameterError
    from selo.models._torch import resolve_precision

    with pytest.raises(ParameterError, match="--precision int8 runs on CPU only"):
        resolve_precision("int8", "cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ParameterError, match="--precision int8 runs on CPU only"):
        # the checkpoint does not exist: refused before anything is loaded
        get_encoder(
            f"openclip:{arch}", checkpoint=tmp_path / "none.pt", device="cuda", precision="int8"
        )


@pytest.mark.parametrize(
    ("arch_name", "file", "keys", "expected"),
    [
        pytest.param("ViT-B-32", "RS5M_ViT-B-32.pt", (), "--model georsclip-vit-b-32", id="rs5m"),
        pytest.param(
            "ViT-B-16", "w.pt", ("input_resolution",), "openclip:ViT-B-16-quickgelu", id="export"
        ),
        pytest.param(
            "ViT-B-32",
            "hub/models--timm--vit_base_patch32_clip_224.openai/open_clip_model.safetensors",
            (),
            "openclip:ViT-B-32-quickgelu",
            id="openai-path",
        ),
        pytest.param("ViT-B-32-quickgelu", "RS5M_ViT-B-32.pt", (), None, id="already-quickgelu"),
        pytest.param("ViT-B-32", "RemoteCLIP-ViT-B-32.pt", (), None, id="gelu-weights"),
        pytest.param("ViT-H-14", "RS5M_ViT-H-14.pt", (), None, id="georsclip-h-is-gelu"),
        pytest.param("selo-test-vit", "RS5M_ViT-B-32.pt", (), None, id="no-quickgelu-twin"),
    ],
)
def test_quick_gelu_warning_signals(arch, arch_name, file, keys, expected):
    from selo.models.openclip import quick_gelu_warning

    state = {k: torch.zeros(()) for k in ("positional_embedding", *keys)}
    message = quick_gelu_warning(arch_name, file, state)
    if expected is None:
        assert message is None
    else:
        assert expected in message and "QuickGELU" in message


def test_quickgelu_weights_in_a_gelu_arch_warn_but_presets_do_not(
    tmp_path_factory, arch, model, monkeypatch
):
    register_arch(
        tmp_path_factory.mktemp("twin"), f"{arch}-quickgelu", {**TINY_VIT, "quick_gelu": True}
    )
    path = tmp_path_factory.mktemp("rs5m") / "RS5M_ViT-B-32.pt"
    torch.save(model.state_dict(), path)
    with pytest.warns(UserWarning, match="use --model georsclip-vit-b-32"):
        get_encoder(f"openclip:{arch}", checkpoint=path, device="cpu")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_encoder(f"openclip:{arch}-quickgelu", checkpoint=path, device="cpu")
        monkeypatch.setattr("selo.models.registry.PRESETS", {"p": _preset(arch)})
        monkeypatch.setattr("selo.models.openclip.PRESETS", {"p": _preset(arch)})
        get_encoder("p", checkpoint=path, device="cpu")


def _preset(arch):
    from selo.models.presets import Preset

    return Preset("p", "openclip", arch, "RS5M_ViT-B-32.pt", "nowhere")


def test_int8_localize_runs_on_cpu_and_records_it(run_cli, arch, checkpoint, int8, tmp_path):
    import json

    from scenes import colour_scene, write_geotiff_scene

    scene = write_geotiff_scene(tmp_path / "s.tif", colour_scene((300, 400)))
    model = ("--model", f"openclip:{arch}", "--checkpoint", checkpoint, "--scales", "256")
    code, _, err = run_cli(
        "localize", scene, "-q", "red roofs", "--out", tmp_path / "o", *model,
        "--device", "cpu", "--precision", "int8",
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / "o" / "run.json").read_text())
    assert record["encoder"]["version"] == int8.version
    assert record["options"]["precision"] == "int8"


def test_int8_on_cuda_is_one_line_error(run_cli, monkeypatch, arch, checkpoint, tmp_path):
    from scenes import colour_scene, write_geotiff_scene

    scene = write_geotiff_scene(tmp_path / "s.tif", colour_scene((300, 400)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    code, _, err = run_cli(
        "localize", scene, "-q", "red roofs", "--out", tmp_path / "o", "--model",
        f"openclip:{arch}", "--checkpoint", checkpoint, "--device", "cuda", "--precision", "int8",
    )  # fmt: skip
    assert code == 2 and "--precision int8 runs on CPU only" in err, err
    assert len(err.strip().splitlines()) == 1, err
