"""NLTK's ``word_tokenize`` as the published AMFMN code ran it, without NLTK or its data.

The published SeLo code (``predict/model_encoder.py``, requirements ``nltk==3.6.7``)
tokenises a query with ``nltk.tokenize.word_tokenize(text.lower())``: Punkt
splits the text into sentences (with a trained English model, which is NLTK
*data* to download), then NLTK's improved Treebank tokenizer
(``NLTKWordTokenizer``, pure regular expressions) splits each sentence.

The Treebank part is ported here rule for rule from NLTK 3.6.7
(``nltk/tokenize/destructive.py``). The sentence split only matters for
tokens in one way: the last period of a sentence becomes its own token, any
other stays on its word (``plane.`` is not ``plane``). So instead of Punkt
this splits after a word ending in ``.``, ``?`` or ``!`` (closing brackets
and quotes may follow) that is followed by more text, as Punkt does, except
after an ellipsis, a single-letter initial or a number followed by a
lower-case word (Punkt's orthographic rule, and the text is lower-cased), or
a common abbreviation. Punkt's trained abbreviation list is not reproduced
(see :data:`ABBREVIATIONS`); single-sentence text, such as every AIR-SLT
query, is tokenised exactly.
"""

from __future__ import annotations

import re

__all__ = ["ABBREVIATIONS", "sentences", "treebank_tokenize", "word_tokenize"]

ABBREVIATIONS = frozenset(
    "e.g i.e etc vs mr mrs ms dr st jr sr inc ltd co corp no approx fig u.s u.k a.m p.m".split()
)
"""Words after whose period no sentence ends (a small part of Punkt's English list)."""

# --- NLTKWordTokenizer of NLTK 3.6.7, in its order -------------------------------------------

_STARTING_QUOTES = [
    (re.compile("([«“‘„]|[`]+)", re.U), r" \1 "),
    (re.compile(r"^\""), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(\')(?!re|ve|ll|m|t|s|d|n)(\w)\b", re.U), r"\1 \2"),
]
_ENDING_QUOTES = [
    (re.compile("([»”’])", re.U), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_PUNCTUATION = [
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$", re.U), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}", re.U), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),  # the final period
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]", re.U), r" \g<0> "),
]
_PARENS_BRACKETS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_CONTRACTIONS2 = [
    re.compile(p)
    for p in (
        r"(?i)\b(can)(?#X)(not)\b",
        r"(?i)\b(d)(?#X)('ye)\b",
        r"(?i)\b(gim)(?#X)(me)\b",
        r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b",
        r"(?i)\b(lem)(?#X)(me)\b",
        r"(?i)\b(more)(?#X)('n)\b",
        r"(?i)\b(wan)(?#X)(na)(?=\s)",
    )
]
_CONTRACTIONS3 = [re.compile(r"(?i) ('t)(?#X)(is)\b"), re.compile(r"(?i) ('t)(?#X)(was)\b")]


def treebank_tokenize(sentence: str) -> list[str]:
    """One sentence split as ``nltk.tokenize.NLTKWordTokenizer().tokenize`` (3.6.7) splits it."""
    text = sentence
    for regexp, substitution in _STARTING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp, substitution in _PUNCTUATION:
        text = regexp.sub(substitution, text)
    text = _PARENS_BRACKETS[0].sub(_PARENS_BRACKETS[1], text)
    text = _DOUBLE_DASHES[0].sub(_DOUBLE_DASHES[1], text)
    text = " " + text + " "
    for regexp, substitution in _ENDING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp in _CONTRACTIONS2:
        text = regexp.sub(r" \1 \2 ", text)
    for regexp in _CONTRACTIONS3:
        text = regexp.sub(r" \1 \2 ", text)
    return text.split()


# --- sentence ends -------------------------------------------------------------------------

_CHUNK = re.compile(r"\S+")
_CLOSING = "\"')]}"
_OPENING = "\"'([{<`"
_NUMBER = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$")  # Punkt's numeric token
_INITIAL = re.compile(r"^[^\W\d]\.$")  # Punkt's initial


def _ends_sentence(chunk: str) -> bool:
    core = chunk.rstrip(_CLOSING)
    if not core or core[-1] not in ".?!":
        return False
    if core[-1] != ".":
        return True
    word = core.lstrip(_OPENING)
    if word.endswith(".."):
        return False  # an ellipsis
    if _INITIAL.match(word) or _NUMBER.match(word):
        return False  # followed by a lower-case word: Punkt's orthographic rule
    stem = word[:-1].lower()
    return stem not in ABBREVIATIONS and stem.split("-")[-1] not in ABBREVIATIONS


def sentences(text: str) -> list[str]:
    """``text`` cut where Punkt would end a sentence (see the module notes)."""
    out, start = [], 0
    chunks = list(_CHUNK.finditer(text))
    for chunk, following in zip(chunks, chunks[1:], strict=False):
        if _ends_sentence(chunk.group()):
            out.append(text[start : chunk.end()])
            start = following.start()
    out.append(text[start:].rstrip())
    return [s for s in out if s.strip()]


def word_tokenize(text: str) -> list[str]:
    """``nltk.tokenize.word_tokenize(text)`` as NLTK 3.6.7 gives it for English text."""
    return [token for sentence in sentences(text) for token in treebank_tokenize(sentence)]
