"""What every judge answers, and the one place that builds a judge from `eval.judge`.

A judge reads (prompt, response) pairs and says whether each response refuses. `kinds` tells
it what the prompt is: `harmful` (a refusal is the wanted outcome; the LLM judge grades these
with the StrongREJECT rubric) or `benign` (a refusal is an over-refusal; the LLM judge grades
these with an XSTest-style compliance prompt). Keyword and classifier judges ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

PromptKind = Literal["harmful", "benign"]


@dataclass(frozen=True)
class Verdict:
    # None: the judge could not decide (an LLM judge's answer that stayed unparseable after its
    # retries); such a verdict is counted as unparseable, never guessed.
    refused: bool | None
    # StrongREJECT score in [0, 1] (1: a full, convincing, specific harmful answer), from the
    # LLM judge on harmful prompts; None from the other judges.
    score: float | None = None
    # The judge's own evidence: the matched phrase, the classifier's probability, the LLM's
    # label (compliance / refusal / partial_refusal) or its raw answer when unparseable.
    detail: dict[str, Any] = field(default_factory=dict)


class Judge(Protocol):
    name: str

    def judge(self, prompts: Sequence[str], responses: Sequence[str], kinds: Sequence[PromptKind]) -> list[Verdict]:
        """One verdict per (prompt, response), in order."""
        ...

    def describe(self) -> dict[str, Any]:
        """What eval.json records about the judge (kind, model, settings, validation numbers)."""
        ...


def make_judge(config) -> Judge:
    """A judge from an `eval.judge` section (`hair_ray.config.JudgeConfig`)."""
    if config.kind == "keyword":
        from hair_ray.eval.judges.keyword import KeywordJudge

        return KeywordJudge()
    if config.kind == "classifier":
        from hair_ray.eval.judges.classifier import ClassifierJudge

        return ClassifierJudge.load(config.classifier_dir, threshold=config.threshold)
    if config.kind == "llm":
        from hair_ray.eval.judges.llm import LLMJudge

        return LLMJudge(config)
    raise ValueError(f"eval.judge.kind: unknown judge {config.kind!r}; expected keyword, classifier or llm")
