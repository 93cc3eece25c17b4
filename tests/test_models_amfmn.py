"""AMFMN: a checkpoint in the published format, loaded strictly, against the published forward."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")  # the published model is built on torchvision's ResNet-18

import published_amfmn as published  # noqa: E402
from PIL import Image  # noqa: E402

from selo.errors import CheckpointError, ModelError  # noqa: E402
from selo.models import get_encoder  # noqa: E402
from selo.models._torch import numpy_scalar_globals  # noqa: E402
from selo.models.amfmn import AMFMN, read_vocabulary  # noqa: E402
from selo.models.treebank import word_tokenize  # noqa: E402

QUERIES = [
    "a white plane parked on a gray airport.",
    "There is a residential area made up of houses with black tops ,cyan tops and white tops.",
    "the gray mountains is covered with green vegetation,divided into several parts.",
    "a zzyzx flibber next to the (red) track!",  # unknown words, brackets
    "lots of cars",
]


@pytest.fixture(scope="module")
def vocab():
    return read_vocabulary("rsitmd_splits_vocab.json")


@pytest.fixture(scope="module")
def reference(vocab):
    return published.random_model(vocab.word2idx)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, reference):
    path = tmp_path_factory.mktemp("amfmn") / "AMFMN.tar"
    published.save_checkpoint(reference, path)
    return path


@pytest.fixture(scope="module")
def encoder(checkpoint):
    return get_encoder("amfmn-rsitmd", checkpoint=checkpoint, device="cpu")


def windows(n=4, size=(256, 256), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


def test_state_dict_has_exactly_the_published_keys_and_shapes(reference, checkpoint, vocab):
    ours = AMFMN(len(vocab)).state_dict()
    theirs = reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert theirs["text_feature.seq2vec.embedding.weight"].shape == (1350, 620)
    with torch.serialization.safe_globals(numpy_scalar_globals()):
        saved = torch.load(checkpoint, weights_only=True)
    AMFMN(len(vocab)).load_state_dict(saved["model"], strict=True)  # as model_init.py does


def test_image_embeddings_equal_the_published_encoder(reference, encoder):
    w = windows()
    ours = encoder.encode_images(w)
    theirs = np.stack([published.image_encoder(reference, Image.fromarray(x)) for x in w])
    assert ours.shape == (4, 512) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=2e-6)


def test_non_square_windows_are_squashed_to_256_like_torchvision(reference, encoder):
    w = windows(2, size=(300, 200), seed=1)
    theirs = np.stack([published.image_encoder(reference, Image.fromarray(x)) for x in w])
    np.testing.assert_allclose(encoder.encode_images(w), theirs, atol=2e-6)


def test_text_embeddings_and_scores_equal_the_published_encoder(reference, encoder, vocab):
    ours = encoder.encode_texts(QUERIES)  # one padded batch
    theirs = np.stack(
        [
            published.text_encoder(reference, vocab.word2idx, word_tokenize(q.lower()))
            for q in QUERIES
        ]
    )
    np.testing.assert_allclose(ours, theirs, atol=2e-6)
    img = windows(3)
    scores = encoder.encode_images(img) @ ours.T
    vectors = [published.image_encoder(reference, Image.fromarray(x)) for x in img]
    published_scores = np.array([[published.cosine_sim(v, t) for t in theirs] for v in vectors])
    # the published score is the mean of the product: the cosine over 512
    np.testing.assert_allclose(scores / 512, published_scores, atol=1e-8)
    np.testing.assert_allclose(scores, published_scores * 512, atol=5e-6)


def test_batched_texts_equal_texts_one_by_one(encoder):
    together = encoder.encode_texts(QUERIES)
    alone = np.concatenate([encoder.encode_texts([q]) for q in QUERIES])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_queries_the_vocabulary_cannot_read_get_a_warning(encoder):
    assert encoder.check_query("a white plane parked on a gray airport") is None
    message = encoder.check_query("a zzyzx plane")
    assert "zzyzx" in message and "<unk>" in message
    assert "no words" in encoder.check_query("?!")
    empty = encoder.encode_texts(["?!"])
    assert empty.shape == (1, 512) and np.isfinite(empty).all()


def test_version_names_vocabulary_weights_and_preprocessing(encoder, checkpoint):
    v = encoder.version
    assert v.startswith("amfmn:rsitmd_splits_vocab.json#")
    assert "+pre256-bilinear-pil-squash-" in v and not v.endswith("fp32")
    assert encoder.input_size == 256 and encoder.embed_dim == 512
    again = get_encoder("amfmn:rsitmd_splits_vocab.json", checkpoint=checkpoint, device="cpu")
    assert again.version == v and again.name == "amfmn:rsitmd_splits_vocab.json"


def test_a_vocabulary_file_path_works_too(tmp_path, checkpoint, vocab):
    path = tmp_path / "my_vocab.json"
    path.write_text(json.dumps({"word2idx": vocab.word2idx, "idx2word": {}, "idx": 1350}))
    enc = get_encoder(f"amfmn:{path}", checkpoint=checkpoint, device="cpu")
    assert enc.vocabulary.word2idx == vocab.word2idx and "my_vocab.json" in enc.version


def _save(path, model_state, **extra):
    torch.save({"epoch": 1, "model": model_state, "options": {}, **extra}, path)
    return path


def test_pickled_objects_other_than_numbers_are_refused(tmp_path, reference):
    path = _save(tmp_path / "evil.tar", reference.state_dict(), args=argparse.Namespace(lr=1))
    with pytest.raises(CheckpointError, match="refusing checkpoint.*argparse.Namespace"):
        get_encoder("amfmn-rsitmd", checkpoint=path, device="cpu")


def test_a_checkpoint_for_another_architecture_is_refused(tmp_path, reference):
    state = dict(reference.state_dict())
    state["cross_attention_s.cross_attention.0.weight"] = torch.zeros(512, 512)  # AMFMN repo
    del state["mvsa.solo_attention.bias"]
    path = _save(tmp_path / "other.tar", state)
    with pytest.raises(CheckpointError, match="1 missing keys.*1 unexpected keys"):
        get_encoder("amfmn-rsitmd", checkpoint=path, device="cpu")


def test_a_checkpoint_for_another_vocabulary_is_refused(tmp_path, reference):
    state = dict(reference.state_dict())
    state["text_feature.seq2vec.embedding.weight"] = torch.zeros(1001, 620)
    path = _save(tmp_path / "rsicd.tar", state)
    with pytest.raises(ModelError, match="embeds 1000 words but the vocabulary"):
        get_encoder("amfmn-rsitmd", checkpoint=path, device="cpu")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("not json", "not an AMFMN vocabulary", id="not-json"),
        pytest.param('{"word2idx": {"a": 1, "b": 4, "<unk>": 2}}', "exactly 1..3", id="gap"),
        pytest.param('{"word2idx": {"a": 1, "b": 2}}', "no '<unk>'", id="no-unk"),
        pytest.param('{"idx": 3}', "not an AMFMN vocabulary", id="no-word2idx"),
    ],
)
def test_bad_vocabularies(tmp_path, content, message):
    path = tmp_path / "vocab.json"
    path.write_text(content)
    with pytest.raises(CheckpointError, match=message):
        read_vocabulary(path)


def test_missing_vocabulary_and_missing_checkpoint():
    with pytest.raises(CheckpointError, match="vocabulary not found"):
        read_vocabulary("nowhere.json")
    with pytest.raises(CheckpointError, match="AMFMN.tar"):
        get_encoder("amfmn-rsitmd")
    with pytest.raises(CheckpointError, match="AMFMN checkpoint"):
        get_encoder("amfmn:rsitmd_splits_vocab.json")


def test_numpy_numbers_pickled_by_numpy_1_load_too(tmp_path):
    """The published checkpoints were saved with NumPy 1.21: ``numpy.core.multiarray.scalar``."""
    from selo.models._torch import load_state_dict

    path = tmp_path / "np1.tar"
    state = {"model": {"w": torch.ones(2)}, "best_rsum": np.float64(1.5), "Eiters": np.int64(3)}
    torch.save(state, path, _use_new_zipfile_serialization=False)  # one plain pickle stream
    data = path.read_bytes()
    assert b"cnumpy._core.multiarray\nscalar" in data
    path.write_bytes(data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    got = load_state_dict(path, safe_globals=numpy_scalar_globals())
    assert torch.equal(got["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match="refusing.*numpy.core.multiarray.scalar"):
        load_state_dict(path)
