"""The encoder registry: spec parsing, presets, errors, the per-process cache, lazy imports."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from selo.errors import CheckpointError, MissingDependencyError, ModelError, ParameterError
from selo.models import EncoderSpec, cached_encoder, get_encoder, list_presets, parse_spec
from selo.models.color import ColorEncoder
from selo.models.presets import KINDS, PRESETS, SPEC_FORMS


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("color", ("color", "")),
        (" color ", ("color", "")),  # surrounding blanks are ignored
        ("openclip:ViT-B-32", ("openclip", "ViT-B-32")),
        ("longclip:ViT-L-14", ("longclip", "ViT-L-14")),
        ("hf-clip:/models/clip", ("hf-clip", "/models/clip")),
        ("hf-clip:C:/models/clip", ("hf-clip", "C:/models/clip")),  # only the first colon splits
        ("remoteclip-vit-b-32", ("preset", "remoteclip-vit-b-32")),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "clip",  # not a kind or preset
        "openclip:",  # kind without argument
        "color:extra",  # color takes no argument
        "timm:vit",  # unknown kind
        "RemoteCLIP-ViT-B-32",  # presets are lower case
        "",
    ],
)
def test_parse_spec_rejects_unknown_specs_and_lists_what_exists(spec):
    with pytest.raises(ModelError) as err:
        parse_spec(spec)
    msg = str(err.value)
    assert repr(spec) in msg
    assert "openclip:<arch>" in msg and "hf-clip:<dir>" in msg and "longclip:<arch>" in msg
    assert all(name in msg for name in PRESETS)


def test_color_is_built_without_weights():
    enc = get_encoder("color")
    assert isinstance(enc, ColorEncoder)
    assert isinstance(get_encoder(EncoderSpec()), ColorEncoder)  # the default spec


def test_color_and_hfclip_take_no_checkpoint(tmp_path):
    with pytest.raises(ParameterError, match="takes no checkpoint.*needs no weights"):
        get_encoder("color", checkpoint="x.pt")
    with pytest.raises(ParameterError, match="weights are in the folder"):
        get_encoder(f"hf-clip:{tmp_path}", checkpoint="x.pt")


@pytest.mark.parametrize("spec", ["openclip:ViT-B-32", "longclip:ViT-B-16"])
def test_clip_kinds_need_a_checkpoint(spec):
    with pytest.raises(CheckpointError, match=f"{spec} needs a checkpoint.*--checkpoint PATH"):
        get_encoder(spec)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_without_checkpoint_says_which_file_and_where(name):
    preset = PRESETS[name]
    with pytest.raises(CheckpointError) as err:
        get_encoder(name)
    msg = str(err.value)
    assert preset.filename in msg and preset.source in msg and "--checkpoint" in msg


def test_preset_resolves_to_its_kind_and_arch(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "selo.models.openclip.load_openclip",
        lambda arch, ckpt, *, name, device, precision: calls.append((arch, ckpt, name, device)),
    )
    get_encoder("georsclip-vit-b-32", checkpoint="RS5M_ViT-B-32.pt", device="cpu")
    assert calls == [("ViT-B-32-quickgelu", "RS5M_ViT-B-32.pt", "georsclip-vit-b-32", "cpu")]


def test_encoder_spec_fields_are_used_and_overridable(monkeypatch):
    calls = []
    monkeypatch.setattr("selo.models._torch.torch_device", lambda device: device)
    monkeypatch.setattr(
        "selo.models.longclip.load_longclip",
        lambda arch, ckpt, *, name, device, precision: calls.append(
            (arch, ckpt, device, precision)
        ),
    )
    spec = EncoderSpec("longclip:ViT-B-16", checkpoint="a.pt", device="cpu", precision="fp16")
    get_encoder(spec)
    get_encoder(spec, checkpoint="b.pt", device="cuda:1", precision="fp32")
    assert calls == [("ViT-B-16", "a.pt", "cpu", "fp16"), ("ViT-B-16", "b.pt", "cuda:1", "fp32")]


@pytest.mark.parametrize(
    ("device", "message"),
    [
        pytest.param("gpu", "unknown device 'gpu'", id="unknown"),
        pytest.param("cuda:0", "CUDA is not available", id="no-cuda"),
    ],
)
def test_unusable_device_fails_before_loading(monkeypatch, device, message):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParameterError, match=message):
        get_encoder("openclip:ViT-B-32", checkpoint="never-read.pt", device=device)


def test_presets_table():
    rows = list_presets()
    assert rows[: len(SPEC_FORMS)] == list(SPEC_FORMS)
    assert [r.name for r in rows[len(SPEC_FORMS) :]] == list(PRESETS)
    assert {r.kind for r in SPEC_FORMS} == set(KINDS)
    expected = {
        "amfmn-rsitmd": ("amfmn", "rsitmd_splits_vocab.json", "AMFMN.tar"),
        "remoteclip-rn50": ("openclip", "RN50", "RemoteCLIP-RN50.pt"),
        "remoteclip-vit-b-32": ("openclip", "ViT-B-32", "RemoteCLIP-ViT-B-32.pt"),
        "remoteclip-vit-l-14": ("openclip", "ViT-L-14", "RemoteCLIP-ViT-L-14.pt"),
        "georsclip-vit-b-32": ("openclip", "ViT-B-32-quickgelu", "RS5M_ViT-B-32.pt"),
        "georsclip-vit-h-14": ("openclip", "ViT-H-14", "RS5M_ViT-H-14.pt"),
        "lrsclip-vit-b-16": ("longclip", "ViT-B-16", "LRSCLIP_ViT-B-16.pt"),
        "lrsclip-vit-l-14": ("longclip", "ViT-L-14", "LRSCLIP_ViT-L-14.pt"),
        "openai-vit-b-32": ("openclip", "ViT-B-32-quickgelu", "open_clip_model.safetensors"),
    }
    assert {n: (p.kind, p.arch, p.filename) for n, p in PRESETS.items()} == expected
    assert PRESETS["georsclip-vit-b-32"].rmi == 0.7447
    assert PRESETS["georsclip-vit-h-14"].rmi == 0.7494
    assert PRESETS["openai-vit-b-32"].rmi == 0.7071
    assert PRESETS["amfmn-rsitmd"].rmi == 0.6772
    assert all(p.source.startswith("https://") for p in PRESETS.values())


def test_the_amfmn_preset_vocabulary_is_bundled():
    from selo.models.amfmn import read_vocabulary

    vocab = read_vocabulary(PRESETS["amfmn-rsitmd"].arch)
    assert len(vocab) == 1349 and vocab.word2idx["<unk>"] == 1349


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.kind != "amfmn"])
def test_every_preset_architecture_builds_offline(name):
    """Each CLIP preset's architecture is an open_clip built-in that needs no download."""
    pytest.importorskip("open_clip")
    from selo.models.openclip import arch_config

    preset = PRESETS[name]
    cfg = arch_config(preset.arch, kind=preset.kind)
    assert cfg["text_cfg"].get("hf_tokenizer_name") is None


def test_cached_encoder_builds_once_per_spec_even_from_threads(monkeypatch):
    built = []

    def fake_get(spec):
        built.append(spec)
        return ColorEncoder()

    monkeypatch.setattr("selo.models.registry.get_encoder", fake_get)
    monkeypatch.setattr("selo.models.registry._CACHE", {})
    spec = EncoderSpec("color")
    got = []
    threads = [threading.Thread(target=lambda: got.append(cached_encoder(spec))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert built == [spec]
    assert all(e is got[0] for e in got)
    assert cached_encoder(EncoderSpec("color", device="cpu")) is not got[0]


@pytest.mark.parametrize(
    ("module", "spec", "install"),
    [
        ("open_clip", "openclip:ViT-B-32", "pip install open_clip_torch"),
        ("open_clip", "longclip:ViT-B-16", "pip install open_clip_torch"),
        ("open_clip", "remoteclip-vit-b-32", "pip install 'selo[clip]'"),
        ("transformers", "hf-clip:{dir}", "pip install 'selo[clip]'"),
    ],
)
def test_missing_optional_dependency_says_what_to_install(
    monkeypatch, tmp_path, module, spec, install
):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"")
    (tmp_path / "config.json").write_text('{"model_type": "clip"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    spec = spec.format(dir=tmp_path)
    checkpoint = None if spec.startswith("hf-clip") else ckpt
    with pytest.raises(MissingDependencyError) as err:
        get_encoder(spec, checkpoint=checkpoint)
    assert module in str(err.value) and install in str(err.value)
    assert isinstance(err.value, ImportError)


def test_importing_models_and_color_does_not_import_torch():
    code = (
        "import sys, selo.models, selo.models.registry;"
        "from selo.models import get_encoder;"
        "get_encoder('color').encode_texts(['green trees']);"
        "heavy = {'torch', 'open_clip', 'transformers'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_selo_models_command_prints_the_table(monkeypatch, capsys):
    from selo.selo_tasks.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for p in list_presets():
        assert p.name in out and p.filename in out and p.source in out
    assert "0.7447" in out and "0.7494" in out and "0.7071" in out


def test_every_kind_is_in_the_model_help_and_parses(run_cli, monkeypatch):
    """The --model help, parse_spec and `selo models` come from one table of kinds."""
    monkeypatch.setenv("COLUMNS", "200")
    _, help_text, _ = run_cli("localize", "--help")
    help_text = " ".join(help_text.split())
    for kind in KINDS.values():
        shown = f"{kind.name}:{kind.argument.upper()}" if kind.argument else kind.name
        assert shown in help_text
        spec = f"{kind.name}:x" if kind.argument else kind.name
        assert parse_spec(spec) == (kind.name, "x" if kind.argument else "")
        assert kind.form in [p.name for p in list_presets()]
