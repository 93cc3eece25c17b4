"""The published AMFMN code, transcribed as a test oracle (not part of selo).

A straightforward copy of what the SeLo repository runs, with the smallest
changes that current torch needs (``Variable`` gone, ``F.sigmoid`` →
``torch.sigmoid``):

- xiaoyuan1996/SemanticLocalizationMetrics ``predict/layers/AMFMN.py``
  (``BaseModel``), ``predict/layers/AMFMN_utils.py`` (``ExtractFeature``,
  ``VSA_Module``, ``Skipthoughts_Embedding_Module``, ``l2norm``),
  ``predict/model_encoder.py`` (``EncoderAMFMN``, ``Encoder.cosine_sim``) and
  ``predict/option/RSITMD/RSITMD_AMFMN.yaml`` (the options);
- Cadene/skip-thoughts.torch ``pytorch/skipthoughts/skipthoughts.py``
  (``BayesianUniSkip`` and its base classes), ``gru.py`` (``BayesianGRU``,
  ``BayesianGRUCell``) and ``dropout.py`` (``SequentialDropout``).

The skip-thoughts weights are not loaded (``_load_embedding``/``_load_rnn``
would read ``dir_st``); the modules are built with torch's initialisation,
which the checkpoint overwrites anyway. The NLTK call of ``text_encoder`` is
replaced by tokens given by the caller.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.transforms as transforms
from PIL import Image
from torchvision.models.resnet import resnet18

OPTIONS = {
    "model": {
        "multiscale": {"multiscale_input_channel": 3, "multiscale_output_channel": 1},
        "cross_attention": {"att_type": "soft_att"},
        "seq2vec": {
            "arch": "skipthoughts",
            "dir_st": "/data",
            "type": "BayesianUniSkip",
            "dropout": 0.25,
            "fixed_emb": False,
        },
        "fusion": {"mca_HIDDEN_SIZE": 512, "mca_FF_SIZE": 1024, "mca_MULTI_HEAD": 8},
        "embed": {"embed_dim": 512},
        "global_local_weight": {"global": "None", "local": "None"},
        "name": "AMFMN",
    },
    "dataset": {"datatype": "rsitmd", "vocab_path": "vocab/rsitmd_splits_vocab.json"},
    "optim": {"epochs": 50, "lr": 0.0002, "resume": "./checkpoints/AMFMN.tar"},
}


# ---- skipthoughts/dropout.py, gru.py, skipthoughts.py ---------------------------------------


class SequentialDropout(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.p = p
        self.restart = True

    def forward(self, input):
        if self.p > 0 and self.training:
            if self.restart:
                self.noise = input.data.new().resize_as_(input.data)
                self.noise.data.bernoulli_(1 - self.p).div_(1 - self.p)
                self.noise = self.noise.expand_as(input)
                self.restart = False
            return input.mul(self.noise)
        return input

    def end_of_sequence(self):
        self.restart = True


class AbstractGRUCell(nn.Module):
    def __init__(self, input_size, hidden_size, bias_ih=True, bias_hh=False):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ir = nn.Linear(input_size, hidden_size, bias=bias_ih)
        self.weight_ii = nn.Linear(input_size, hidden_size, bias=bias_ih)
        self.weight_in = nn.Linear(input_size, hidden_size, bias=bias_ih)
        self.weight_hr = nn.Linear(hidden_size, hidden_size, bias=bias_hh)
        self.weight_hi = nn.Linear(hidden_size, hidden_size, bias=bias_hh)
        self.weight_hn = nn.Linear(hidden_size, hidden_size, bias=bias_hh)


class BayesianGRUCell(AbstractGRUCell):
    def __init__(self, input_size, hidden_size, bias_ih=True, bias_hh=False, dropout=0.25):
        super().__init__(input_size, hidden_size, bias_ih, bias_hh)
        self.dropout = dropout
        self.drop_ir = SequentialDropout(p=dropout)
        self.drop_ii = SequentialDropout(p=dropout)
        self.drop_in = SequentialDropout(p=dropout)
        self.drop_hr = SequentialDropout(p=dropout)
        self.drop_hi = SequentialDropout(p=dropout)
        self.drop_hn = SequentialDropout(p=dropout)

    def end_of_sequence(self):
        for d in (
            self.drop_ir,
            self.drop_ii,
            self.drop_in,
            self.drop_hr,
            self.drop_hi,
            self.drop_hn,
        ):
            d.end_of_sequence()

    def forward(self, x, hx=None):
        if hx is None:
            hx = x.data.new().resize_((x.size(0), self.hidden_size)).fill_(0)
        x_ir = self.drop_ir(x)
        x_ii = self.drop_ii(x)
        x_in = self.drop_in(x)
        x_hr = self.drop_hr(hx)
        x_hi = self.drop_hi(hx)
        x_hn = self.drop_hn(hx)
        r = torch.sigmoid(self.weight_ir(x_ir) + self.weight_hr(x_hr))
        i = torch.sigmoid(self.weight_ii(x_ii) + self.weight_hi(x_hi))
        n = torch.tanh(self.weight_in(x_in) + r * self.weight_hn(x_hn))
        hx = (1 - i) * n + i * hx
        return hx


class BayesianGRU(nn.Module):
    def __init__(self, input_size, hidden_size, bias_ih=True, bias_hh=False, dropout=0.25):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.gru_cell = BayesianGRUCell(input_size, hidden_size, bias_ih, bias_hh, dropout=dropout)

    def forward(self, x, hx=None, max_length=None):
        batch_size = x.size(0)
        seq_length = x.size(1)
        if max_length is None:
            max_length = seq_length
        output = []
        for i in range(max_length):
            hx = self.gru_cell(x[:, i, :], hx=hx)
            output.append(hx.view(batch_size, 1, self.hidden_size))
        self.gru_cell.end_of_sequence()
        output = torch.cat(output, 1)
        return output, hx


class BayesianUniSkip(nn.Module):
    def __init__(self, dir_st, vocab, save=False, dropout=0.25, fixed_emb=False):
        super().__init__()
        self.dir_st = dir_st
        self.vocab = vocab
        self.dropout = dropout
        # _load_embedding() without the utable file
        self.embedding = nn.Embedding(
            num_embeddings=len(self.vocab) + 1, embedding_dim=620, padding_idx=0, sparse=False
        )
        # _load_rnn() without the uni_skip file
        self.rnn = BayesianGRU(620, 2400, dropout=self.dropout)

    def _select_last(self, x, lengths):
        batch_size = x.size(0)
        mask = x.data.new().resize_as_(x.data).fill_(0)
        for i in range(batch_size):
            mask[i][lengths[i] - 1].fill_(1)
        x = x.mul(mask)
        x = x.sum(1).view(batch_size, -1)
        return x

    def _process_lengths(self, input):
        max_length = input.size(1)
        lengths = list(max_length - input.data.eq(0).sum(1).squeeze())
        return lengths

    def forward(self, input, lengths=None):
        if lengths is None:
            lengths = self._process_lengths(input)
        max_length = max(lengths)
        x = self.embedding(input)
        x, hn = self.rnn(x, max_length=max_length)
        if lengths:
            x = self._select_last(x, lengths)
        return x


# ---- predict/layers/AMFMN_utils.py, AMFMN.py --------------------------------------------------


def l2norm(X, dim, eps=1e-8):
    norm = torch.pow(X, 2).sum(dim=dim, keepdim=True).sqrt() + eps
    X = torch.div(X, norm)
    return X


class ExtractFeature(nn.Module):
    def __init__(self, opt={}, finetune=True):  # noqa: B006 - as published
        super().__init__()
        self.embed_dim = opt["embed"]["embed_dim"]
        self.resnet = resnet18(weights=None)  # published: pretrained=True, then overwritten
        for param in self.resnet.parameters():
            param.requires_grad = finetune
        self.pool_2x2 = nn.MaxPool2d(4)
        self.up_sample_2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_sample_4 = nn.Upsample(scale_factor=4, mode="nearest")
        self.linear = nn.Linear(in_features=512, out_features=self.embed_dim)

    def forward(self, img):
        x = self.resnet.conv1(img)
        x = self.resnet.bn1(x)
        x = self.resnet.relu(x)
        x = self.resnet.maxpool(x)
        f1 = self.resnet.layer1(x)
        f2 = self.resnet.layer2(f1)
        f3 = self.resnet.layer3(f2)
        f4 = self.resnet.layer4(f3)
        f2_up = self.up_sample_2(f2)
        lower_feature = torch.cat([f1, f2_up], dim=1)
        f4_up = self.up_sample_2(f4)
        higher_feature = torch.cat([f3, f4_up], dim=1)
        feature = f4.view(f4.shape[0], 512, -1)
        solo_feature = self.linear(torch.mean(feature, dim=-1))
        return lower_feature, higher_feature, solo_feature


class VSA_Module(nn.Module):
    def __init__(self, opt={}):  # noqa: B006 - as published
        super().__init__()
        channel_size = opt["multiscale"]["multiscale_input_channel"]
        out_channels = opt["multiscale"]["multiscale_output_channel"]
        embed_dim = opt["embed"]["embed_dim"]
        self.LF_conv = nn.Conv2d(192, channel_size, kernel_size=3, stride=4)
        self.HF_conv = nn.Conv2d(768, channel_size, kernel_size=1, stride=1)
        self.conv1x1_1 = nn.Conv2d(channel_size * 2, out_channels, kernel_size=1)
        self.conv1x1_2 = nn.Conv2d(channel_size * 2, out_channels, kernel_size=1)
        self.solo_attention = nn.Linear(in_features=256, out_features=embed_dim)

    def forward(self, lower_feature, higher_feature, solo_feature):
        lower_feature = self.LF_conv(lower_feature)
        higher_feature = self.HF_conv(higher_feature)
        concat_feature = torch.cat([lower_feature, higher_feature], dim=1)
        concat_feature = (
            higher_feature.mean(dim=1, keepdim=True).expand_as(concat_feature) + concat_feature
        )
        main_feature = self.conv1x1_1(concat_feature)
        attn_feature = torch.sigmoid(
            self.conv1x1_2(concat_feature).view(concat_feature.shape[0], 1, -1)
        ).view(concat_feature.shape[0], 1, main_feature.shape[2], main_feature.shape[3])
        atted_feature = (main_feature * attn_feature).squeeze(dim=1).view(attn_feature.shape[0], -1)
        solo_att = torch.sigmoid(self.solo_attention(atted_feature))
        solo_feature = solo_feature * solo_att
        return l2norm(solo_feature, -1)


class Skipthoughts_Embedding_Module(nn.Module):
    def __init__(self, vocab, opt, out_dropout=-1):
        super().__init__()
        self.opt = opt
        self.vocab_words = vocab
        self.seq2vec = BayesianUniSkip(
            opt["seq2vec"]["dir_st"],
            self.vocab_words,
            dropout=opt["seq2vec"]["dropout"],
            fixed_emb=opt["seq2vec"]["fixed_emb"],
        )
        self.to_out = nn.Linear(in_features=2400, out_features=self.opt["embed"]["embed_dim"])
        self.dropout = out_dropout

    def forward(self, input_text):
        x_t_vec = self.seq2vec(input_text)
        out = F.relu(self.to_out(x_t_vec))
        if self.dropout >= 0:
            out = F.dropout(out, self.dropout)
        return out


class BaseModel(nn.Module):
    def __init__(self, opt={}, vocab_words=[]):  # noqa: B006 - as published
        super().__init__()
        self.extract_feature = ExtractFeature(opt=opt)
        self.drop_g_v = nn.Dropout(0.3)
        self.mvsa = VSA_Module(opt=opt)
        self.text_feature = Skipthoughts_Embedding_Module(vocab=vocab_words, opt=opt)
        self.gw = opt["global_local_weight"]["global"]
        self.lw = opt["global_local_weight"]["local"]
        self.Eiters = 0
        self.model_name = "AMFMN"


def model_init(word2idx: dict[str, int]) -> BaseModel:
    """``predict/model_init.py`` up to the checkpoint: the vocabulary words sorted by id."""
    vocab_word = [w for w, _ in sorted(word2idx.items(), key=lambda x: x[1])]
    return BaseModel(OPTIONS["model"], vocab_word).eval()


def random_model(word2idx: dict[str, int], seed: int = 0) -> BaseModel:
    """The published model with random weights, BatchNorm statistics included (test data)."""
    torch.manual_seed(seed)
    model = model_init(word2idx)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
        model.text_feature.seq2vec.embedding.weight.mul_(0.3)
    return model.eval()


def save_checkpoint(model: BaseModel, path) -> None:
    """``AMFMN.tar`` as the AMFMN training code saves it (``utils.save_checkpoint``)."""
    state = {
        "epoch": 38,
        "arch": "baseline",
        "model": model.state_dict(),
        "best_rsum": np.float64(265.27),  # a NumPy number, as rsum is computed
        "options": OPTIONS,
        "Eiters": 12345,
    }
    torch.save(state, path)


# ---- predict/model_encoder.py ----------------------------------------------------------------

PUNCTUATIONS = [",", ".", ":", ";", "?", "(", ")", "[", "]", "&", "!", "*", "@", "#", "$", "%"]


def image_encoder(model, image: Image.Image) -> np.ndarray:
    """``EncoderAMFMN.image_encoder`` of an opened image (``Image.open(path)`` published)."""
    transform = transforms.Compose(
        [
            transforms.Resize((256, 256)),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    image = image.convert("RGB")
    image = transform(image)
    image = torch.unsqueeze(image, dim=0)
    with torch.no_grad():
        lower_feature, higher_feature, solo_feature = model.extract_feature(image)
        global_feature = model.mvsa(lower_feature, higher_feature, solo_feature)
        global_feature = l2norm(global_feature, dim=-1)
    return global_feature.cpu().detach().numpy()[0]


def text_encoder(model, word2idx: dict[str, int], tokens: list[str]) -> np.ndarray:
    """``EncoderAMFMN.text_encoder`` from the tokens ``nltk.tokenize.word_tokenize`` gives."""
    tokens = [k for k in tokens if k not in PUNCTUATIONS]
    tokens_UNK = [k if k in word2idx.keys() else "<unk>" for k in tokens]
    caption = torch.LongTensor([word2idx[token] for token in tokens_UNK])
    caption = torch.unsqueeze(caption, dim=0)
    caption = caption.expand((2, caption.shape[-1]))
    with torch.no_grad():
        text_feature = model.text_feature(caption)
        text_feature = l2norm(text_feature, dim=-1)
    return text_feature.cpu().detach().numpy()[0]


def cosine_sim(image_vector: np.ndarray, text_vector: np.ndarray) -> float:
    """``Encoder.cosine_sim``: the mean of the unit vectors' product (cosine / 512)."""
    image_vector = image_vector / np.linalg.norm(image_vector)
    text_vector = text_vector / np.linalg.norm(text_vector)
    return np.mean(np.multiply(image_vector, text_vector))
