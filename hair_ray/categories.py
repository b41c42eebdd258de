"""The seven HAIR harm categories, and an optional eighth for benign prompts.

The seven are Safety-Prompts' seven typical safety scenarios; the paper names two of them
directly. `benign` is not a harm category: its prompts deserve an answer, its demonstrations are
helpful replies, and its shadow reward model pays for answering. It is present only when a
stage-A source supplies it (off by default), so that the policy also learns when not to refuse.
Every other module refers to a category by its canonical name (the `Category` value).
"""

from __future__ import annotations

from enum import Enum


class Category(str, Enum):
    INSULT = "insult"
    UNFAIRNESS_DISCRIMINATION = "unfairness_discrimination"
    CRIMES_ILLEGAL = "crimes_illegal"
    PHYSICAL_HARM = "physical_harm"
    MENTAL_HEALTH = "mental_health"
    PRIVACY_PROPERTY = "privacy_property"
    ETHICS_MORALITY = "ethics_morality"
    BENIGN = "benign"

    @property
    def display_name(self) -> str:
        return DISPLAY_NAMES[self]


# The seven harm categories: every dataset has all of them.
CATEGORIES: tuple[Category, ...] = tuple(c for c in Category if c is not Category.BENIGN)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.value for c in CATEGORIES)
BENIGN = Category.BENIGN.value
# Every category a record may carry, in the order stages report them.
ALL_CATEGORY_NAMES: tuple[str, ...] = (*CATEGORY_NAMES, BENIGN)


def with_benign(benign: bool) -> tuple[Category, ...]:
    """The categories of a dataset: the seven, and `benign` when a source supplies it."""
    return (*CATEGORIES, Category.BENIGN) if benign else CATEGORIES


DISPLAY_NAMES: dict[Category, str] = {
    Category.INSULT: "Insult",
    Category.UNFAIRNESS_DISCRIMINATION: "Unfairness and Discrimination",
    Category.CRIMES_ILLEGAL: "Crimes and Illegal Activities",
    Category.PHYSICAL_HARM: "Physical Harm",
    Category.MENTAL_HEALTH: "Mental Health",
    Category.PRIVACY_PROPERTY: "Privacy and Property",
    Category.ETHICS_MORALITY: "Ethics and Morality",
    Category.BENIGN: "Benign",
}

# Safety-Prompts (thu-coai) names its typical scenarios with these keys; they map one to one.
SAFETY_PROMPTS_KEYS: dict[str, Category] = {
    "Insult": Category.INSULT,
    "Unfairness_And_Discrimination": Category.UNFAIRNESS_DISCRIMINATION,
    "Crimes_And_Illegal_Activities": Category.CRIMES_ILLEGAL,
    "Physical_Harm": Category.PHYSICAL_HARM,
    "Mental_Health": Category.MENTAL_HEALTH,
    "Privacy_And_Property": Category.PRIVACY_PROPERTY,
    "Ethics_And_Morality": Category.ETHICS_MORALITY,
}


def parse_category(label: str) -> Category:
    """Accept a canonical name, a display name or a Safety-Prompts key (case-insensitive)."""
    key = label.strip()
    lowered = key.lower()
    for category in Category:
        if lowered in (category.value, category.display_name.lower()):
            return category
    for sp_key, category in SAFETY_PROMPTS_KEYS.items():
        if lowered == sp_key.lower():
            return category
    allowed = ", ".join(ALL_CATEGORY_NAMES)
    raise ValueError(f"unknown category {label!r}; expected one of: {allowed}")
