"""AMFMN, the model of the published SeLo benchmark, as a selo encoder (``amfmn:<vocab.json>``).

AMFMN (Yuan et al., "Exploring a Fine-Grained Multiscale Method for Cross-Modal
Remote Sensing Image Retrieval", TGRS 2021), trained on RSITMD, made the
published SeLo tables (Rmi 0.6772 for v1, 0.7021 for v2). This is the model
exactly as the SeLo code builds it (xiaoyuan1996/SemanticLocalizationMetrics,
``predict/layers/AMFMN.py`` and ``AMFMN_utils.py``, options
``predict/option/RSITMD/RSITMD_AMFMN.yaml``), ported to current torch with the
same module names, so the published checkpoint's ``model`` state dict loads
all or nothing:

- image: a torchvision ResNet-18 (``extract_feature.resnet``), whose layer-1/2
  and layer-3/4 maps are fused by the multi-scale visual self-attention
  (``mvsa``) into a gate on the projected mean of layer 4;
- text: the skip-thoughts ``BayesianUniSkip`` GRU of Cadene's ``skipthoughts``
  package (``text_feature.seq2vec``: a 620-wide word embedding with row 0 for
  padding, and a GRU cell of six linear maps, 2400 wide, hidden maps without
  bias), then ``relu(to_out(·))`` to 512. The published code needs the
  skip-thoughts files (``dir_st``) only to initialise these weights before the
  checkpoint overwrites them; here they are never read.

Encoding is ``predict/model_encoder.py``'s ``EncoderAMFMN``: windows resized to
256×256 with PIL (bilinear, torchvision ``Resize((256, 256))``), ImageNet
mean/std; a query lower-cased, split by NLTK's ``word_tokenize``
(:mod:`selo.models.treebank`, no NLTK needed), the listed punctuation
dropped, words outside the vocabulary read as ``<unk>``. Dropout is off (eval).
The published score is ``np.mean(image * text)`` of the unit vectors, the
cosine divided by 512; selo scores the cosine itself (maps are min-max
normalised, so they do not change).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ModelError
from ._torch import (
    ImageTransform,
    TorchEncoder,
    load_into,
    load_state_dict,
    numpy_scalar_globals,
    torch_device,
)
from .base import file_digest
from .treebank import word_tokenize

__all__ = [
    "AMFMN",
    "AMFMN_INPUT_SIZE",
    "BUNDLED_VOCABULARIES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PUNCTUATION",
    "AmfmnEncoder",
    "Vocabulary",
    "load_amfmn",
    "read_vocabulary",
]

AMFMN_INPUT_SIZE = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PUNCTUATION = frozenset(
    [",", ".", ":", ";", "?", "(", ")", "[", "]", "&", "!", "*", "@", "#", "$", "%"]
)
"""Tokens the published code drops from a query."""

FUNCTION_WORDS = frozenset(
    """a an the and or but nor of in on at to from by with without into onto over under above
    below near next beside between among through across along around behind inside outside
    is are was were be been being am has have had do does did it its it's this that these
    those there here which who whom whose what where when while as than then so some any
    each every all both few more most many much several such no not very can could will
    would shall should may might must i you he she we they me him her us them my your his
    our their up down out off about against during before after again once also just only
    own same other too s t""".split()
)
"""Common English words; the published vocabulary leaves NLTK's stopwords out, so a query's
stopwords are always ``<unk>`` and not worth a warning (this is not NLTK's list)."""

BUNDLED_VOCABULARIES = ("rsitmd_splits_vocab.json",)
"""Vocabularies shipped with selo (``models/data/amfmn/``), usable by file name."""

# predict/option/RSITMD/RSITMD_AMFMN.yaml
EMBED_DIM = 512
MULTISCALE_IN = 3
MULTISCALE_OUT = 1
WORD_DIM = 620
HIDDEN = 2400


def l2norm(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """The published ``l2norm``: ``x / (‖x‖ + eps)``."""
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + eps)


# --------------------------------------------------------------------------- image tower


class _BasicBlock(nn.Module):
    """torchvision's ResNet ``BasicBlock`` (same parameter names)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class _ResNet18(nn.Module):
    """torchvision's ``resnet18()`` (same parameter and buffer names; ``fc`` is unused)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (inplanes, planes, stride) in enumerate(widths, start=1):
            blocks = nn.Sequential(
                _BasicBlock(inplanes, planes, stride), _BasicBlock(planes, planes)
            )
            setattr(self, f"layer{i}", blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, 1000)


class _ExtractFeature(nn.Module):
    """``ExtractFeature``: ResNet-18 maps fused at two scales, and the projected layer-4 mean."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet = _ResNet18()
        self.pool_2x2 = nn.MaxPool2d(4)  # unused, as published
        self.up_sample_2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_sample_4 = nn.Upsample(scale_factor=4, mode="nearest")  # unused, as published
        self.linear = nn.Linear(512, EMBED_DIM)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(img))))
        f1 = r.layer1(x)
        f2 = r.layer2(f1)
        f3 = r.layer3(f2)
        f4 = r.layer4(f3)
        lower = torch.cat([f1, self.up_sample_2(f2)], dim=1)  # B×192×64×64
        higher = torch.cat([f3, self.up_sample_2(f4)], dim=1)  # B×768×16×16
        solo = self.linear(torch.mean(f4.view(f4.shape[0], 512, -1), dim=-1))  # B×512
        return lower, higher, solo


class _VSAModule(nn.Module):
    """``VSA_Module``: the multi-scale visual self-attention that gates the solo feature."""

    def __init__(self) -> None:
        super().__init__()
        self.LF_conv = nn.Conv2d(192, MULTISCALE_IN, kernel_size=3, stride=4)
        self.HF_conv = nn.Conv2d(768, MULTISCALE_IN, kernel_size=1, stride=1)
        self.conv1x1_1 = nn.Conv2d(MULTISCALE_IN * 2, MULTISCALE_OUT, kernel_size=1)
        self.conv1x1_2 = nn.Conv2d(MULTISCALE_IN * 2, MULTISCALE_OUT, kernel_size=1)
        self.solo_attention = nn.Linear(256, EMBED_DIM)

    def forward(
        self, lower: torch.Tensor, higher: torch.Tensor, solo: torch.Tensor
    ) -> torch.Tensor:
        lower = self.LF_conv(lower)
        higher = self.HF_conv(higher)
        concat = torch.cat([lower, higher], dim=1)
        concat = higher.mean(dim=1, keepdim=True).expand_as(concat) + concat
        main = self.conv1x1_1(concat)
        b = concat.shape[0]
        attn = torch.sigmoid(self.conv1x1_2(concat).view(b, 1, -1))
        attn = attn.view(b, 1, main.shape[2], main.shape[3])
        atted = (main * attn).squeeze(dim=1).view(b, -1)
        solo = solo * torch.sigmoid(self.solo_attention(atted))
        return l2norm(solo, -1)


# --------------------------------------------------------------------------- text tower


class _GRUCell(nn.Module):
    """skipthoughts' ``BayesianGRUCell`` in eval mode (its dropouts are then identities)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ir = nn.Linear(input_size, hidden_size)
        self.weight_ii = nn.Linear(input_size, hidden_size)
        self.weight_in = nn.Linear(input_size, hidden_size)
        self.weight_hr = nn.Linear(hidden_size, hidden_size, bias=False)
        self.weight_hi = nn.Linear(hidden_size, hidden_size, bias=False)
        self.weight_hn = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, hx: torch.Tensor) -> torch.Tensor:
        r = torch.sigmoid(self.weight_ir(x) + self.weight_hr(hx))
        i = torch.sigmoid(self.weight_ii(x) + self.weight_hi(hx))
        n = torch.tanh(self.weight_in(x) + r * self.weight_hn(hx))
        return (1 - i) * n + i * hx


class _BayesianGRU(nn.Module):
    """skipthoughts' ``BayesianGRU``: the cell run over the words, from a zero state."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.gru_cell = _GRUCell(input_size, hidden_size)


class _BayesianUniSkip(nn.Module):
    """skipthoughts' ``BayesianUniSkip``: word embedding (row 0 = padding) and GRU.

    ``forward`` gives each sentence's hidden state after its last word, as
    ``_select_last`` does; a sentence without words keeps the zero state.
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size + 1, WORD_DIM, padding_idx=0)
        self.rnn = _BayesianGRU(WORD_DIM, HIDDEN)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids)
        out = x.new_zeros((ids.shape[0], HIDDEN))
        hx = x.new_zeros((ids.shape[0], HIDDEN))
        steps = int(lengths.max()) if len(lengths) else 0
        for t in range(steps):
            hx = self.rnn.gru_cell(x[:, t, :], hx)
            last = lengths == t + 1
            out[last] = hx[last].to(out.dtype)
        return out


class _SkipthoughtsEmbedding(nn.Module):
    """``Skipthoughts_Embedding_Module``: ``relu(to_out(uniskip(words)))``."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.seq2vec = _BayesianUniSkip(vocab_size)
        self.to_out = nn.Linear(HIDDEN, EMBED_DIM)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return F.relu(self.to_out(self.seq2vec(ids, lengths)))


class AMFMN(nn.Module):
    """The SeLo code's AMFMN ``BaseModel`` (RSITMD options), module for module.

    Its ``state_dict`` has exactly the keys and shapes of the published
    checkpoint's ``model`` entry for a vocabulary of ``vocab_size`` words.
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.extract_feature = _ExtractFeature()
        self.drop_g_v = nn.Dropout(0.3)  # unused at inference, as published
        self.mvsa = _VSAModule()
        self.text_feature = _SkipthoughtsEmbedding(vocab_size)

    def image_features(self, img: torch.Tensor) -> torch.Tensor:
        """Unit image vectors of a normalised B×3×256×256 batch (``EncoderAMFMN.image_encoder``)."""
        return l2norm(self.mvsa(*self.extract_feature(img)), dim=-1)

    def text_features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Unit text vectors of zero-padded word ids (``EncoderAMFMN.text_encoder``)."""
        return l2norm(self.text_feature(ids, lengths), dim=-1)


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """A ``vocabs.py`` vocabulary: word → id (1..N, ``<unk>`` among them), and its digest."""

    word2idx: dict[str, int]
    name: str
    digest: str

    def __len__(self) -> int:
        return len(self.word2idx)

    def tokens(self, text: str) -> list[str]:
        """The published query tokens: lower-cased, word-tokenised, listed punctuation dropped."""
        return [t for t in word_tokenize(text.lower()) if t not in PUNCTUATION]

    def ids(self, text: str) -> list[int]:
        """Word ids of ``text``, unknown words as ``<unk>``."""
        unk = self.word2idx["<unk>"]
        return [self.word2idx.get(t, unk) for t in self.tokens(text)]

    def unknown(self, text: str) -> list[str]:
        """The words of ``text`` read as ``<unk>``, common function words left out."""
        return [t for t in self.tokens(text) if t not in self.word2idx and t not in FUNCTION_WORDS]


def bundled_vocabulary(name: str) -> Path:
    """The path of a vocabulary shipped with selo."""
    return Path(str(resources.files("selo.models").joinpath(f"data/amfmn/{name}")))


def read_vocabulary(spec: str | Path) -> Vocabulary:
    """The vocabulary in file ``spec``, or the bundled one of that file name.

    Checked as the model needs it: a ``word2idx`` object whose ids are exactly
    1..N (they index rows 1..N of the word embedding) and that has ``<unk>``.
    """
    path = Path(spec).expanduser()
    try:
        found = path.is_file()
    except OSError:  # a name too long: not a file, maybe a bundled name
        found = False
    if not found and str(spec) in BUNDLED_VOCABULARIES:
        path, found = bundled_vocabulary(str(spec)), True
    if not found:
        raise CheckpointError(
            f"AMFMN vocabulary not found: {spec} (a vocabs.py JSON file such as "
            f"rsitmd_splits_vocab.json; bundled: {', '.join(BUNDLED_VOCABULARIES)})"
        )
    try:
        raw = path.read_bytes()
        word2idx = json.loads(raw)["word2idx"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise CheckpointError(
            f"{path} is not an AMFMN vocabulary (a JSON object with 'word2idx'): {e}"
        ) from e
    if not isinstance(word2idx, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in word2idx.items()
    ):
        raise CheckpointError(f"{path}: 'word2idx' must map words to integer ids")
    if sorted(word2idx.values()) != list(range(1, len(word2idx) + 1)):
        raise CheckpointError(f"{path}: word ids must be exactly 1..{len(word2idx)}")
    if "<unk>" not in word2idx:
        raise CheckpointError(f"{path}: the vocabulary has no '<unk>' word")
    return Vocabulary(word2idx, path.name, hashlib.sha256(raw).hexdigest()[:8])


# --------------------------------------------------------------------------- encoder


class AmfmnEncoder(TorchEncoder):
    """AMFMN with its vocabulary and the published preprocessing."""

    input_size = AMFMN_INPUT_SIZE

    def __init__(self, *, vocabulary: Vocabulary, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocabulary = vocabulary

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.image_features(pixels)

    def _text_features(self, texts: list[str]) -> torch.Tensor:
        ids = [self.vocabulary.ids(t) for t in texts]
        lengths = torch.tensor([len(i) for i in ids], dtype=torch.long)
        padded = torch.zeros((len(ids), max(1, int(lengths.max()))), dtype=torch.long)
        for row, words in enumerate(ids):
            padded[row, : len(words)] = torch.tensor(words, dtype=torch.long)
        return self.model.text_features(padded.to(self.device), lengths.to(self.device))

    def _token_count(self, text: str) -> int:
        return len(self.vocabulary.tokens(text))

    def check_query(self, text: str) -> str | None:
        tokens = self.vocabulary.tokens(text)
        if not tokens:
            return f"the query has no words for {self.name}; every window scores the same"
        unknown = self.vocabulary.unknown(text)
        if unknown:
            shown = ", ".join(dict.fromkeys(unknown))
            return f"words not in the {self.vocabulary.name} vocabulary are read as <unk>: {shown}"
        return None


def amfmn_transform() -> ImageTransform:
    """``Resize((256, 256))`` (PIL bilinear), ``ToTensor``, ImageNet ``Normalize``."""
    return ImageTransform(
        resize=AMFMN_INPUT_SIZE,
        crop=AMFMN_INPUT_SIZE,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        resize_mode="squash",
    )


def load_amfmn(
    vocab: str | Path,
    checkpoint: str | Path,
    *,
    name: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int = 64,
) -> AmfmnEncoder:
    """The ``amfmn:<vocab>`` encoder with weights from a published-format checkpoint.

    The checkpoint is what the AMFMN training code saves, ``{"model": state_dict,
    "epoch": ..., "options": ..., ...}``, read with ``torch.load(weights_only=True)``
    allowing only NumPy numbers besides tensors and plain containers; its
    ``model`` entry must fit the architecture exactly (strict).
    """
    spec = name or f"amfmn:{vocab}"
    vocabulary = read_vocabulary(vocab)
    state = load_state_dict(checkpoint, safe_globals=numpy_scalar_globals())
    model = AMFMN(len(vocabulary))
    rows = state.get("text_feature.seq2vec.embedding.weight")
    if rows is not None and rows.shape[0] != len(vocabulary) + 1:
        raise ModelError(
            f"checkpoint {checkpoint} embeds {rows.shape[0] - 1} words but the vocabulary "
            f"{vocabulary.name} has {len(vocabulary)}; use the model's own vocabulary"
        )
    load_into(model, state, f"checkpoint {checkpoint} (for {spec}, an AMFMN checkpoint)")
    transform = amfmn_transform()
    return AmfmnEncoder(
        name=spec,
        version=(
            f"amfmn:{vocabulary.name}#{vocabulary.digest}@{file_digest(checkpoint)}+{transform.tag}"
        ),
        model=model,
        transform=transform,
        embed_dim=EMBED_DIM,
        context_length=1 << 30,  # a GRU reads sentences of any length
        device=torch_device(device),
        batch_size=batch_size,
        precision=precision,
        vocabulary=vocabulary,
    )
