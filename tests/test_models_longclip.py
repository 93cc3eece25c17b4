"""longclip encoders: a tiny Long-CLIP state dict (two text position tables), loaded offline."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from tiny_clip import TINY_VIT, register_arch, smooth_windows  # noqa: E402

from selo.errors import CheckpointError  # noqa: E402
from selo.models import get_encoder  # noqa: E402
from selo.models.longclip import (  # noqa: E402
    LONGCLIP_CONTEXT,
    LONGCLIP_KEEP,
    fold_positional_embedding,
)
from selo.models.openclip import build_model, encoder_from_model  # noqa: E402

LONG_TEXT = "a white plane parked on a gray airport next to green trees and a red track " * 6


@pytest.fixture(scope="module")
def arch(tmp_path_factory):
    return register_arch(tmp_path_factory.mktemp("archs"), "selo-test-long", TINY_VIT)


@pytest.fixture(scope="module")
def longclip_state(arch):
    """What Long-CLIP's code would save: QuickGELU CLIP, 248 positions, plus the res table."""
    torch.manual_seed(0)
    model = build_model(arch, quick_gelu=True, context_length=LONGCLIP_CONTEXT)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    width = state["positional_embedding"].shape[1]
    state["positional_embedding"] = torch.randn(LONGCLIP_CONTEXT, width) * 0.5
    state["positional_embedding_res"] = torch.randn(LONGCLIP_CONTEXT, width) * 0.5
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, longclip_state):
    path = tmp_path_factory.mktemp("ckpt") / "LRSCLIP_tiny.pt"
    torch.save(longclip_state, path)
    return path


@pytest.fixture(scope="module")
def encoder(arch, checkpoint):
    return get_encoder(f"longclip:{arch}", checkpoint=checkpoint, device="cpu")


def _longclip_encode_text(state, arch, tokens):
    """Long-CLIP's text tower as its code computes it: x + pe·mask1 + pe_res·mask2."""
    model = build_model(arch, quick_gelu=True, context_length=LONGCLIP_CONTEXT)
    plain = {k: v for k, v in state.items() if k != "positional_embedding_res"}
    model.load_state_dict(plain, strict=False)
    mask1 = torch.zeros(LONGCLIP_CONTEXT, 1)
    mask1[:20] = 1
    mask2 = 1 - mask1
    with torch.no_grad():
        x = model.token_embedding(tokens)
        x = x + state["positional_embedding"] * mask1 + state["positional_embedding_res"] * mask2
        x = model.transformer(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection
    return torch.nn.functional.normalize(x, dim=-1).numpy()


def test_folded_text_tower_equals_longclip_formula(arch, longclip_state, encoder):
    texts = ["green trees", LONG_TEXT]
    tokens = open_clip.get_tokenizer(arch, context_length=LONGCLIP_CONTEXT)(texts)
    assert (tokens[1] > 0).sum() > 77  # the long text uses positions past CLIP's 77
    expected = _longclip_encode_text(longclip_state, arch, tokens)
    np.testing.assert_allclose(encoder.encode_texts(texts), expected, atol=1e-5)


def test_fold_takes_first_rows_from_pe_and_the_rest_from_pe_res(longclip_state):
    folded = fold_positional_embedding(longclip_state)
    assert "positional_embedding_res" not in folded
    pos = folded["positional_embedding"]
    assert LONGCLIP_KEEP == 20 and pos.shape[0] == LONGCLIP_CONTEXT
    assert torch.equal(pos[:20], longclip_state["positional_embedding"][:20])
    assert torch.equal(pos[20:], longclip_state["positional_embedding_res"][20:])
    plain = {k: v for k, v in longclip_state.items() if k != "positional_embedding_res"}
    assert fold_positional_embedding(plain) is plain


def test_image_tower_and_attributes(arch, longclip_state, encoder):
    model = build_model(arch, quick_gelu=True, context_length=LONGCLIP_CONTEXT)
    model.load_state_dict(fold_positional_embedding(longclip_state))
    mem = encoder_from_model(model, arch=arch, kind="longclip", weights="x", device="cpu")
    windows = smooth_windows(3)
    img = encoder.encode_images(windows)
    np.testing.assert_allclose(img, mem.encode_images(windows), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    assert encoder.context_length == LONGCLIP_CONTEXT
    assert encoder.version.startswith(f"longclip:{arch}@")
    assert encoder.version.endswith("+pre64-bicubic-pil")
    assert encoder.check_query(LONG_TEXT) is None  # fits in 248 tokens
    assert "at most 248" in encoder.check_query("gray " * 300)


def test_text_longer_than_77_tokens_is_not_truncated(encoder):
    """The end of a long sentence changes its embedding (it would not at 77 tokens)."""
    a, b = encoder.encode_texts([LONG_TEXT + "by a lake", LONG_TEXT + "by a road"])
    assert np.abs(a - b).max() > 1e-4


def test_plain_clip_checkpoint_is_not_a_longclip_one(arch, tmp_path):
    path = tmp_path / "clip77.pt"
    torch.save(build_model(arch).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"Long-CLIP.*positional_embedding: \(77, 64\)"):
        get_encoder(f"longclip:{arch}", checkpoint=path)
