"""The model table: the encoder kinds (the forms of a spec) and named presets for known
remote-sensing checkpoints.

An encoder kind is the prefix of a spec (``openclip:ViT-B-32``): what follows its colon,
the loader that builds it (imported only when one is built, so that torch is not), the
checkpoint file it needs (or why it takes none) and its help. ``parse_spec``, the
``--model`` help and ``selo models`` are generated from :data:`KINDS`.

A preset is data: which loader (``kind``) and architecture a published
checkpoint needs, the file name it is distributed under, where users download
it, and its published SeLo Rmi on AIR-SLT where one is known. selo never
downloads: users fetch the file and pass its path.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EncoderKind", "KINDS", "Preset", "PRESETS", "SPEC_FORMS", "spec_forms"]


@dataclass(frozen=True)
class EncoderKind:
    """One kind of encoder (a row of :data:`KINDS`)."""

    name: str  # the spec's prefix
    argument: str  # what follows "name:" (empty: nothing does)
    #: ``module:function`` in selo.models, called as ``function(argument[, checkpoint], *,
    #: name, device, precision)``, the checkpoint given when the kind takes one
    loader: str
    checkpoint: str | None  # what the --checkpoint file is; None: the kind takes none
    no_checkpoint: str  # why it takes none (said when one is given)
    source: str  # where its weights come from, for `selo models`
    help: str
    torch: bool = True  # built with torch (the device is checked before loading)

    @property
    def form(self) -> str:
        """The spec form: ``openclip:<arch>``, or ``color``."""
        return f"{self.name}:<{self.argument}>" if self.argument else self.name


KINDS: dict[str, EncoderKind] = {
    k.name: k
    for k in (
        EncoderKind(
            "color",
            "",
            "color:load_color",
            None,
            "it needs no weights",
            "built in",
            "Default. Colour words of the query vs colour shares of the window; no weights.",
            torch=False,
        ),
        EncoderKind(
            "openclip",
            "arch",
            "openclip:load_openclip",
            "open_clip state dict",
            "",
            "your own file",
            "Any CLIP architecture built into open_clip; --checkpoint PATH to a state dict.",
        ),
        EncoderKind(
            "hf-clip",
            "dir",
            "hfclip:load_hfclip",
            None,
            "the weights are in the folder",
            "your own folder",
            "A local Hugging Face CLIP folder (config.json, weights, tokenizer).",
        ),
        EncoderKind(
            "longclip",
            "arch",
            "longclip:load_longclip",
            "Long-CLIP state dict",
            "",
            "your own file",
            "A Long-CLIP state dict (248-token text); --checkpoint PATH.",
        ),
        EncoderKind(
            "amfmn",
            "vocab.json",
            "amfmn:load_amfmn",
            "AMFMN checkpoint",
            "",
            "your own file",
            "An AMFMN training checkpoint (--checkpoint PATH) with its word vocabulary "
            "(a vocabs.py JSON file; rsitmd_splits_vocab.json is bundled).",
        ),
    )
}
"""Encoder kinds by name, i.e. the prefixes of a spec (``openclip:ViT-B-32``)."""


def spec_forms(*, upper: bool = False) -> str:
    """The spec forms, comma-separated: ``color, openclip:<arch>, ...`` (``upper``: as a
    command line's metavars, ``color, openclip:ARCH, ...``)."""
    return ", ".join(
        f"{k.name}:{k.argument.upper()}" if upper and k.argument else k.form for k in KINDS.values()
    )


@dataclass(frozen=True)
class Preset:
    """One row of the model table.

    For a spec form, ``name`` is the pattern (``openclip:<arch>``) and ``arch``
    and ``filename`` are empty; for a named preset they say what to pass.
    """

    name: str
    kind: str
    arch: str
    filename: str
    source: str
    rmi: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"preset {self.name!r}: unknown kind {self.kind!r}")


SPEC_FORMS: tuple[Preset, ...] = tuple(
    Preset(k.form, k.name, "", "", k.source, notes=k.help) for k in KINDS.values()
)
"""The kinds as rows of the model table (``selo models`` lists them before the presets)."""

_SLM = "https://github.com/xiaoyuan1996/SemanticLocalizationMetrics"
_REMOTECLIP = "https://huggingface.co/chendelong/RemoteCLIP"
_GEORSCLIP = "https://huggingface.co/Zilun/GeoRSCLIP"
_LRSCLIP = "https://github.com/MitsuiChen14/LRSCLIP"
_LRSCLIP_NOTE = (
    "Long-CLIP format. Checkpoints linked from the LRSCLIP repository "
    "(Hugging Face cwz14/LRSCLIP_{arch}); file name as distributed by the authors. "
    "The paper's best Rmi is 0.7653 (variant not recorded here)."
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "amfmn-rsitmd",
            "amfmn",
            "rsitmd_splits_vocab.json",
            "AMFMN.tar",
            _SLM,
            rmi=0.6772,
            notes="AMFMN trained on RSITMD, the model of the published SeLo tables (v1 Rmi "
            "0.6772, v2 0.7021). The checkpoint is in the Google Drive folder linked from the "
            "repository's README (SLM_checkpoints.zip); the vocabulary (the repository's "
            "predict/vocab/rsitmd_splits_vocab.json, MIT) is bundled with selo. No "
            "skip-thoughts files are needed.",
        ),
        Preset(
            "remoteclip-rn50",
            "openclip",
            "RN50",
            "RemoteCLIP-RN50.pt",
            _REMOTECLIP,
            notes="open_clip state dict, loaded into open_clip RN50 as the authors do.",
        ),
        Preset(
            "remoteclip-vit-b-32",
            "openclip",
            "ViT-B-32",
            "RemoteCLIP-ViT-B-32.pt",
            _REMOTECLIP,
            notes="open_clip state dict, loaded into open_clip ViT-B-32 as the authors do.",
        ),
        Preset(
            "remoteclip-vit-l-14",
            "openclip",
            "ViT-L-14",
            "RemoteCLIP-ViT-L-14.pt",
            _REMOTECLIP,
            notes="open_clip state dict, loaded into open_clip ViT-L-14 as the authors do.",
        ),
        Preset(
            "georsclip-vit-b-32",
            "openclip",
            "ViT-B-32-quickgelu",
            "RS5M_ViT-B-32.pt",
            _GEORSCLIP,
            rmi=0.7447,
            notes="GeoRSCLIP (RS5M), in the repository's ckpt/ folder. The authors load it "
            "into OpenAI's ViT-B/32, which uses QuickGELU.",
        ),
        Preset(
            "georsclip-vit-h-14",
            "openclip",
            "ViT-H-14",
            "RS5M_ViT-H-14.pt",
            _GEORSCLIP,
            rmi=0.7494,
            notes="GeoRSCLIP (RS5M), in the repository's ckpt/ folder; open_clip ViT-H-14 "
            "(LAION-2B base).",
        ),
        Preset(
            "lrsclip-vit-b-16",
            "longclip",
            "ViT-B-16",
            "LRSCLIP_ViT-B-16.pt",
            _LRSCLIP,
            notes=_LRSCLIP_NOTE.format(arch="ViT-B-16"),
        ),
        Preset(
            "lrsclip-vit-l-14",
            "longclip",
            "ViT-L-14",
            "LRSCLIP_ViT-L-14.pt",
            _LRSCLIP,
            notes=_LRSCLIP_NOTE.format(arch="ViT-L-14"),
        ),
        Preset(
            "openai-vit-b-32",
            "openclip",
            "ViT-B-32-quickgelu",
            "open_clip_model.safetensors",
            "https://huggingface.co/timm/vit_base_patch32_clip_224.openai",
            rmi=0.7071,
            notes="OpenAI CLIP ViT-B/32 as an open_clip state dict (open_clip_pytorch_model.bin "
            "works too, the timm-format model.safetensors does not; open_clip caches these "
            "files in ~/.cache/huggingface/hub). OpenAI's own ViT-B-32.pt is a TorchScript "
            "archive and is refused.",
        ),
    )
}
"""Named presets: ``get_encoder(name, checkpoint=PATH)``."""
