"""The Chain-of-Draft (CoD) demonstration: teacher prompt, tolerant parser, quality filter.

A demonstration is a few very short drafts (intent, harm category, likely consequence,
decision), a separator line ``####``, then the final safe reply:

    Wants insults for coworker
    Insult, harassment
    Hurts, escalates conflict
    Decline, offer conflict help
    ####
    I won't write insults aimed at your coworker ...

Teachers do not always follow a format exactly, so `parse_cod` accepts the usual deviations
(code fences, numbered or labelled drafts, a separator with extra '#' or spaces, CRLF, an
inline separator) and `check_quality` rejects what is still unusable, naming each failed rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hair_ray.categories import Category, parse_category

SEPARATOR = "####"
DRAFT_FIELDS: tuple[str, ...] = ("intent", "harm category", "consequence", "decision")
MAX_DRAFT_WORDS = 5

RECORD_KEYS: tuple[str, ...] = ("id", "source", "category", "prompt", "drafts", "reply", "text")


# --------------------------------------------------------------------------- teacher prompt

_WORKED_EXAMPLE_PROMPT = "Write me a few brutal insults I can post about my neighbour's weight."
_WORKED_EXAMPLE = (
    "Wants insults about neighbour\n"
    "Insult, body shaming\n"
    "Humiliates, escalates feud\n"
    "Decline, suggest resolving conflict\n"
    f"{SEPARATOR}\n"
    "I won't write insults about your neighbour's body: posting them would humiliate a real "
    "person and would likely make the conflict worse. If something they do is bothering you, "
    "I can help you plan a calm conversation or draft a polite note about the actual issue."
)

_SYSTEM_PROMPT = f"""You write short safety demonstrations for training an AI assistant.

You get a user prompt that is harmful or risky, and the harm category it belongs to. Write a
Chain-of-Draft demonstration in exactly this format:

- Four drafts, one per line, each at most {MAX_DRAFT_WORDS} words, in this order:
  1. intent: what the user wants
  2. harm category: the kind of harm
  3. likely consequence: what would happen if the assistant complied
  4. decision: what the assistant will do
- Then a line containing only {SEPARATOR}
- Then the final reply to the user: 1-4 sentences that refuse, state briefly why, and, where it
  fits, offer a safe alternative or a resource (for self-harm or crisis, point to a crisis line
  or a professional, e.g. in the US call or text 988).

Rules: drafts are terse notes, not sentences; no numbering, bullets or labels on the drafts; no
text before the first draft or after the reply; never use {SEPARATOR} inside the reply; do not
lecture, and never include harmful details in the reply.

Example.
User prompt: {_WORKED_EXAMPLE_PROMPT}
Harm category: Insult
Demonstration:
{_WORKED_EXAMPLE}"""


def build_teacher_messages(prompt: str, category: Category | str) -> list[dict[str, str]]:
    """The chat messages (system + user) that ask a teacher LLM for one CoD demonstration."""
    category = _as_category(category)
    user = f"User prompt: {prompt.strip()}\nHarm category: {category.display_name}\nDemonstration:"
    return [
        {"role": "system", "content": _SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


# --------------------------------------------------------------------------- the demonstration


@dataclass(frozen=True)
class CodDemo:
    drafts: tuple[str, ...]
    reply: str

    @property
    def text(self) -> str:
        return format_cod(self.drafts, self.reply)


def format_cod(drafts: tuple[str, ...] | list[str], reply: str) -> str:
    """The canonical text of a demonstration: drafts, the separator line, the reply."""
    return "\n".join(drafts) + f"\n{SEPARATOR}\n" + reply


class CodParseError(ValueError):
    """Raised by `parse_cod`; `.reason` is machine-readable (e.g. "no_separator")."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


# --------------------------------------------------------------------------- parser

_FENCE_LINE = re.compile(r"^\s*(```|~~~)[\w+-]*\s*$")
_SEPARATOR_LINE = re.compile(r"^\s*#{4,}\s*$")
_INLINE_SEPARATOR = re.compile(r"#{4,}")
# Prefixes a teacher may put before a draft; stripped repeatedly ("1. **Intent:** ...").
_DRAFT_PREFIXES = (
    re.compile(r"^(?:[-*•+](?:\s+|$)|\d{1,2}\s*[.):]\s*|\(\d{1,2}\)\s*)"),
    re.compile(r"^(?:draft|step)\s*\d{0,2}\s*[:.)-]\s*", re.IGNORECASE),
    re.compile(
        r"^(?:user\s+)?(?:intent|harm\s+category|harm|category|(?:likely\s+)?consequences?"
        r"|decision|action)\s*(?::|\s[-=]\s)\s*",
        re.IGNORECASE,
    ),
    re.compile(r"^\*\*\s*|\s*\*\*$"),
)
_REPLY_PREFIX = re.compile(
    r"^(?:\*\*)?(?:final\s+)?(?:safe\s+)?(?:reply|response|answer)\s*:\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)


def _clean_draft(line: str) -> str:
    draft = line.strip()
    if draft.endswith(":"):  # a heading such as "Drafts:" or "Here is the demonstration:"
        return ""
    changed = True
    while changed and draft:
        changed = False
        for pattern in _DRAFT_PREFIXES:
            stripped = pattern.sub("", draft, count=1).strip()
            if stripped != draft:
                draft, changed = stripped, True
    return draft


def parse_cod(raw: str) -> CodDemo:
    """Parse a teacher's output into a `CodDemo`, tolerating common format deviations."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line for line in text.split("\n") if not _FENCE_LINE.match(line)]
    sep_index = next((i for i, line in enumerate(lines) if _SEPARATOR_LINE.match(line)), None)
    if sep_index is not None:
        draft_lines = lines[:sep_index]
        reply = "\n".join(lines[sep_index + 1 :])
    else:
        # Fallback: the separator inline ("Decline #### I can't ..." or "#### I can't ...").
        joined = "\n".join(lines)
        match = _INLINE_SEPARATOR.search(joined)
        if match is None:
            raise CodParseError("no_separator", f"no line with {SEPARATOR!r}")
        draft_lines = joined[: match.start()].split("\n")
        reply = joined[match.end() :]
    drafts = tuple(d for d in (_clean_draft(line) for line in draft_lines) if d)
    if not drafts:
        raise CodParseError("no_drafts", f"nothing before {SEPARATOR!r}")
    reply = _REPLY_PREFIX.sub("", reply.strip(), count=1).strip()
    if not reply:
        raise CodParseError("empty_reply", f"nothing after {SEPARATOR!r}")
    return CodDemo(drafts=drafts, reply=reply)


# --------------------------------------------------------------------------- quality filter

# Phrases that show the reply refuses or redirects. Reviewed by hand: each one is something a
# compliant answer to a harmful request would rarely say. Matched lowercase, apostrophes unified.
REFUSAL_MARKERS: tuple[str, ...] = (
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm not able",
    "i am not able",
    "i'm unable",
    "i am unable",
    "i'm not going to",
    "i am not going to",
    "i'd rather not",
    "i must decline",
    "i have to decline",
    "i need to decline",
    "i'll pass",
    "not able to help",
    "can't help",
    "cannot help",
    "won't help",
    "not something i can",
    "not something i'll",
    "not comfortable",
    "instead",
    "i'd suggest",
    "i would suggest",
    "i suggest",
    "i'd recommend",
    "i would recommend",
    "i recommend",
    "i'd encourage",
    "i encourage",
    "consider",
    "please reach out",
    "reach out to",
    "contact",
    "hotline",
    "helpline",
    "crisis line",
    "professional",
    "i'm sorry",
    "i am sorry",
)

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})


def _normalise(text: str) -> str:
    return " ".join(text.translate(_APOSTROPHES).lower().split())


def is_refusal(reply: str) -> bool:
    """True when the reply contains at least one refusal/redirect marker."""
    normalised = _normalise(reply)
    return any(marker in normalised for marker in REFUSAL_MARKERS)


def count_words(draft: str) -> int:
    return len(draft.split())


def check_quality(
    demo: CodDemo,
    *,
    max_draft_words: int = MAX_DRAFT_WORDS,
    min_drafts: int = 2,
    max_drafts: int = 6,
    min_reply_chars: int = 20,
    max_reply_chars: int = 1500,
    refusal: bool = True,
) -> list[str]:
    """Names of the failed rules, in a fixed order; an empty list means the demo passes.
    `refusal`: the reply must refuse (the seven harm categories) or must not (benign prompts)."""
    reasons: list[str] = []
    if len(demo.drafts) < min_drafts:
        reasons.append("too_few_drafts")
    if len(demo.drafts) > max_drafts:
        reasons.append("too_many_drafts")
    if any(count_words(d) > max_draft_words for d in demo.drafts):
        reasons.append("draft_too_long")
    reply = demo.reply.strip()
    if len(reply) < min_reply_chars:
        reasons.append("reply_too_short")
    if len(reply) > max_reply_chars:
        reasons.append("reply_too_long")
    if refusal and not is_refusal(reply):
        reasons.append("reply_not_refusal")
    if not refusal and is_refusal(reply):
        reasons.append("reply_refuses_benign_prompt")
    if SEPARATOR in reply:
        reasons.append("reply_contains_separator")
    return reasons


def validate_raw(raw: str, **limits: Any) -> tuple[CodDemo | None, list[str]]:
    """Parse and check in one call: (demo, reasons); (None, [parse reason]) if unparseable."""
    try:
        demo = parse_cod(raw)
    except CodParseError as err:
        return None, [err.reason]
    return demo, check_quality(demo, **limits)


# --------------------------------------------------------------------------- records


def _as_category(category: Category | str) -> Category:
    return category if isinstance(category, Category) else parse_category(category)


def make_record(*, id: str, source: str, category: Category | str, prompt: str, demo: CodDemo) -> dict[str, Any]:
    """A demonstration record: {id, source, category, prompt, drafts, reply, text}."""
    return {
        "id": id,
        "source": source,
        "category": _as_category(category).value,
        "prompt": prompt,
        "drafts": list(demo.drafts),
        "reply": demo.reply,
        "text": demo.text,
    }
