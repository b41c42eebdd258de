"""Rule-based sub-sentence splitter for data hardness (docs/architecture.md §1, stage C step 3).

A response o_i and a demonstration y_q are cut into sub-sentences {S^k}, {S̃^l}, each embedded
on its own. Rules, in order:

1. newlines: every line is its own piece (Chain-of-Draft drafts, list items, code lines);
2. lines without a letter or digit are dropped (the CoD separator ``####``, bare bullets, rules);
3. a leading list marker ("- ", "* ", "• ", "1. ", "2) ") is stripped;
4. sentences by pysbd (English rules), then also after the CJK terminators 。！？ (pysbd's "en"
   rules do not know them);
5. clauses: after ';' (and the full-width '；');
6. any piece longer than ``max_words`` words is cut into consecutive chunks of at most
   ``max_words`` words, because CLIP's text tower reads only 77 tokens and would silently
   truncate. A Han or kana character counts as one word (those scripts put no spaces between
   words).
"""

from __future__ import annotations

import functools
import re

__all__ = ["split_sub_sentences"]

# A letter or a digit (\w without the underscore): lines/pieces without one carry no content.
_CONTENT = re.compile(r"[^\W_]")
_LIST_MARKER = re.compile(r"^(?:[-*•+]|\d{1,3}[.)])\s+")
# Zero-width splits keep the terminator with the text it ends.
_CJK_END = re.compile(r"(?<=[。！？])")
_CLAUSE_END = re.compile(r"(?<=[;；])")
# Han (incl. extension A, compatibility), hiragana and katakana: one character = one word.
_CJK_CHAR = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_WORD = re.compile(rf"{_CJK_CHAR}|(?:(?!{_CJK_CHAR})\S)+")


@functools.lru_cache(maxsize=1)
def _segmenter():
    import pysbd  # imported lazily: only the hardness scorer needs it

    return pysbd.Segmenter(language="en", clean=False)


def _sentences(line: str) -> list[str]:
    """pysbd sentences of one line; the whole line if pysbd fails on odd input."""
    try:
        return [s for s in _segmenter().segment(line) if isinstance(s, str)]
    except Exception:  # pysbd has known crashes on exotic input; never lose the text
        return [line]


def _chunk_words(piece: str, max_words: int) -> list[str]:
    """Consecutive slices of ``piece`` holding at most ``max_words`` words each.

    Slices are taken from the original string (word spans), so spacing inside a chunk and CJK
    text without spaces are preserved.
    """
    spans = [m.span() for m in _WORD.finditer(piece)]
    if len(spans) <= max_words:
        return [piece]
    return [piece[spans[i][0] : spans[min(i + max_words, len(spans)) - 1][1]] for i in range(0, len(spans), max_words)]


def _pieces_of_line(line: str) -> list[str]:
    line = _LIST_MARKER.sub("", line.strip())
    out: list[str] = []
    for sentence in _sentences(line):
        for cjk in _CJK_END.split(sentence):
            out.extend(_CLAUSE_END.split(cjk))
    return out


def split_sub_sentences(text: str, max_words: int = 40) -> list[str]:
    """Split ``text`` into non-empty sub-sentences of at most ``max_words`` words each.

    Deterministic; never raises on any string (empty or whitespace text gives []). Every piece
    is stripped and contains at least one letter or digit.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be >= 1, got {max_words}")
    pieces: list[str] = []
    for line in text.splitlines():
        if not _CONTENT.search(line):
            continue
        for piece in _pieces_of_line(line):
            for chunk in _chunk_words(piece.strip(), max_words):
                chunk = chunk.strip()
                if _CONTENT.search(chunk):
                    pieces.append(chunk)
    return pieces
