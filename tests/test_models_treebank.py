"""NLTK's word_tokenize without NLTK: against NLTK 3.6.7 (the published pin), recorded and live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selo.models.treebank import sentences, word_tokenize

RECORDED = json.loads((Path(__file__).parent / "nltk_tokens.json").read_text())
"""Tokens NLTK 3.6.7 gives (written by NLTK itself; see its "note")."""


def test_the_59_air_slt_queries_tokenise_as_nltk_does():
    cases = RECORDED["air-slt"]
    assert len(cases) == 59
    for caption, expected in cases.items():
        assert word_tokenize(caption.lower()) == expected, caption


@pytest.mark.parametrize("text", list(RECORDED["multi"]))
def test_sentences_punctuation_quotes_and_contractions_as_nltk(text):
    assert word_tokenize(text) == RECORDED["multi"][text]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a plane. the road.", ["a plane.", "the road."], id="two-sentences"),
        pytest.param("lot 5. the car", ["lot 5. the car"], id="number"),
        pytest.param("area a. the x", ["area a. the x"], id="initial"),
        pytest.param("a plane... the car", ["a plane... the car"], id="ellipsis"),
        pytest.param("st. louis airport.", ["st. louis airport."], id="abbreviation"),
        pytest.param("roads, e.g. a bridge.", ["roads, e.g. a bridge."], id="e.g."),
        pytest.param("some (plane.) the car", ["some (plane.)", "the car"], id="closing-bracket"),
        pytest.param("", [], id="empty"),
    ],
)
def test_sentence_ends(text, expected):
    assert sentences(text) == expected


def test_against_live_nltk_when_installed():
    nltk = pytest.importorskip("nltk")
    from nltk.tokenize import PunktSentenceTokenizer
    from nltk.tokenize.destructive import NLTKWordTokenizer

    tb, punkt = NLTKWordTokenizer(), PunktSentenceTokenizer()
    for caption in RECORDED["air-slt"]:
        text = caption.lower()
        assert word_tokenize(text) == nltk.tokenize.word_tokenize(text, preserve_line=True)
    for text in RECORDED["multi"]:
        assert word_tokenize(text) == [w for s in punkt.tokenize(text) for w in tb.tokenize(s)]
