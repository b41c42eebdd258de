"""Do-Not-Answer -> the seven HAIR categories: the reviewed mapping table and its lookup.

The paper does not publish its mapping; this one is ours (shared/data/do-not-answer/MAPPING.md,
reviewed row by row). Each row is (types_of_harm, specific_harms short name, rows in
do_not_answer_en.csv, category, fit). `approx` marks a loose fit (e.g. Do-Not-Answer's
misinformation rows under Ethics and Morality, which it has no better rows for): a strict build
(`mapping_fit: good`) drops those rows. A row whose harm is not in the table is dropped and
counted, never given a guessed category.
"""

from __future__ import annotations

import unicodedata
from typing import Literal, NamedTuple

from hair_ray.categories import Category as C

Fit = Literal["good", "approx"]
GOOD: Fit = "good"
APPROX: Fit = "approx"

# Do-Not-Answer's twelve types_of_harm, named once so the table below stays readable.
ADULT = "Adult Content"
STEREOTYPES = "Social stereotypes and unfair discrimination"
TOXIC = "Toxic language (hate speech)"
MENTAL_CRISIS = "Mental Health or Overreliance Crisis"
TREAT_AS_HUMAN = "Treat Chatbot as a Human"
PRIVATE_INFO = "Compromise privacy by leaking or inferring private information (person/individual)"
SENSITIVE_INFO = "Risks from leaking or inferring sensitive information (organization/gov)"
ILLEGAL = "Assisting illegal activities"
UNSAFE_ACTIONS = "Nudging or advising users to perform unethical or unsafe actions"
DISINFO_CAMPAIGNS = "Reducing the cost of disinformation campaigns"
MATERIAL_MISINFO = "Causing material harm by disseminating misinformation e.g. in medicine or law"
FALSE_INFO = "Disseminating false or misleading information"


class MappingRow(NamedTuple):
    types_of_harm: str
    specific_harm: str  # the name before ':' in the CSV, or a prefix of it (long names)
    rows: int  # how many rows of do_not_answer_en.csv it covers (939 in all)
    category: C
    fit: Fit


# fmt: off
MAPPING: tuple[MappingRow, ...] = tuple(MappingRow(*row) for row in [
    (ADULT, "Explicit Sexual Content", 20, C.INSULT, APPROX),
    (ADULT, "Graphic Violence", 8, C.PHYSICAL_HARM, GOOD),
    (STEREOTYPES, "Racial/Ethnic Discrimination", 20, C.UNFAIRNESS_DISCRIMINATION, GOOD),
    (STEREOTYPES, "Religious Discrimination", 20, C.UNFAIRNESS_DISCRIMINATION, GOOD),
    (STEREOTYPES, "Location Discrimination", 18, C.UNFAIRNESS_DISCRIMINATION, GOOD),
    (STEREOTYPES, "Other Forms of Discrimination", 12, C.UNFAIRNESS_DISCRIMINATION, GOOD),
    (STEREOTYPES, "Gender/Sexual Discrimination", 11, C.UNFAIRNESS_DISCRIMINATION, GOOD),
    (STEREOTYPES, "Body Shaming", 9, C.UNFAIRNESS_DISCRIMINATION, GOOD),
    (STEREOTYPES, "Disability Discrimination", 5, C.UNFAIRNESS_DISCRIMINATION, GOOD),
    (TOXIC, "Insult", 37, C.INSULT, GOOD),
    (TOXIC, "Obscene", 13, C.INSULT, GOOD),
    (TOXIC, "Other Severe Toxicity", 3, C.INSULT, GOOD),
    (MENTAL_CRISIS, "Consult advice on psychotic disorders, such as Attention Deficit Hy", 28, C.MENTAL_HEALTH, GOOD),
    (MENTAL_CRISIS, "Self-Harm", 20, C.MENTAL_HEALTH, GOOD),
    (MENTAL_CRISIS, "Depression and Anxiety", 10, C.MENTAL_HEALTH, GOOD),
    (MENTAL_CRISIS, "Advice of coping strategies on anger management, anxiety, panic att", 9, C.MENTAL_HEALTH, GOOD),
    (TREAT_AS_HUMAN, "places personal emotional reliance on a chatbot", 31, C.MENTAL_HEALTH, APPROX),
    (TREAT_AS_HUMAN, "Ask for personal information", 19, C.PRIVACY_PROPERTY, APPROX),
    (PRIVATE_INFO, "Financial Information", 20, C.PRIVACY_PROPERTY, GOOD),
    (PRIVATE_INFO, "Medical Information", 20, C.PRIVACY_PROPERTY, GOOD),
    (PRIVATE_INFO, "Educational Information", 19, C.PRIVACY_PROPERTY, GOOD),
    (PRIVATE_INFO, "Personal Life Information", 19, C.PRIVACY_PROPERTY, GOOD),
    (PRIVATE_INFO, "Biometric Data", 18, C.PRIVACY_PROPERTY, GOOD),
    (PRIVATE_INFO, "Personal Identification Information (PII)", 16, C.PRIVACY_PROPERTY, GOOD),
    (SENSITIVE_INFO, "Sensitive Technological Details", 20, C.PRIVACY_PROPERTY, APPROX),
    (SENSITIVE_INFO, "Classified Information", 19, C.PRIVACY_PROPERTY, APPROX),
    (SENSITIVE_INFO, "Financial and Budgetary Information", 19, C.PRIVACY_PROPERTY, APPROX),
    (SENSITIVE_INFO, "Confidential Operations", 18, C.PRIVACY_PROPERTY, APPROX),
    (SENSITIVE_INFO, "Internal Communications", 18, C.PRIVACY_PROPERTY, APPROX),
    (SENSITIVE_INFO, "Cybersecurity Vulnerabilities", 16, C.PRIVACY_PROPERTY, APPROX),
    (SENSITIVE_INFO, "Legal Information", 14, C.PRIVACY_PROPERTY, APPROX),
    (SENSITIVE_INFO, "Internal Policies and Procedures", 12, C.PRIVACY_PROPERTY, APPROX),
    (ILLEGAL, "Threats and Intimidation", 22, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Financial Crimes", 11, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Animal Abuse/Cruelty/Poaching", 10, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Copyright Infringement", 10, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Illegal Digital Activities", 10, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Illegal Drugs and Substances", 10, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Illegal Trade", 10, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Illegitimate surveillance and censorship", 10, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Sexual Exploitation and Pornography", 10, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Terrorist Activities", 10, C.CRIMES_ILLEGAL, GOOD),
    (ILLEGAL, "Violence and Physical Harm", 10, C.PHYSICAL_HARM, GOOD),
    (ILLEGAL, "Substance Abuse", 9, C.PHYSICAL_HARM, GOOD),
    (UNSAFE_ACTIONS, "Guide for Risky Pranks, Unsafe Behaviors or Destructive Behavior, S", 22, C.PHYSICAL_HARM, GOOD),
    (UNSAFE_ACTIONS, "Endorsement of Unsafe Health Practices", 20, C.PHYSICAL_HARM, GOOD),
    (UNSAFE_ACTIONS, "Defamatory Content", 10, C.ETHICS_MORALITY, APPROX),
    (UNSAFE_ACTIONS, "Trolling or Flame baiting", 10, C.INSULT, GOOD),
    (UNSAFE_ACTIONS, "Endorsement of Cyberbullying or Online Harassment", 9, C.INSULT, GOOD),
    (DISINFO_CAMPAIGNS, "Spam Content", 20, C.ETHICS_MORALITY, APPROX),
    (DISINFO_CAMPAIGNS, "Disinformation", 10, C.ETHICS_MORALITY, APPROX),
    (DISINFO_CAMPAIGNS, "Malinformation", 10, C.ETHICS_MORALITY, APPROX),
    (MATERIAL_MISINFO, "Unreliable Experts", 25, C.ETHICS_MORALITY, APPROX),
    (MATERIAL_MISINFO, "Medical Advice", 19, C.PHYSICAL_HARM, GOOD),
    (MATERIAL_MISINFO, "Legal Advice", 16, C.ETHICS_MORALITY, APPROX),
    (MATERIAL_MISINFO, "Financial Advice", 3, C.ETHICS_MORALITY, APPROX),
    (FALSE_INFO, "Rumors", 25, C.ETHICS_MORALITY, APPROX),
    (FALSE_INFO, "Propaganda", 24, C.ETHICS_MORALITY, APPROX),
    (FALSE_INFO, "False News", 18, C.ETHICS_MORALITY, APPROX),
    (FALSE_INFO, "Misinterpretation or Wrong Context", 15, C.ETHICS_MORALITY, APPROX),
    (FALSE_INFO, "Hazardous Activities", 10, C.PHYSICAL_HARM, GOOD),
])
# fmt: on

# Per-category totals of the table (MAPPING.md's summary), kept to check the table against.
EXPECTED_ROWS_PER_CATEGORY: dict[C, int] = {
    C.INSULT: 92,
    C.UNFAIRNESS_DISCRIMINATION: 95,
    C.CRIMES_ILLEGAL: 113,
    C.PHYSICAL_HARM: 98,
    C.MENTAL_HEALTH: 98,
    C.PRIVACY_PROPERTY: 267,
    C.ETHICS_MORALITY: 176,
}


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def specific_harm_name(specific_harms: str) -> str:
    """The CSV's `specific_harms` is "Name: description"; some long names carry no colon."""
    return _norm(specific_harms.split(":", 1)[0])


_BY_TYPE: dict[str, list[MappingRow]] = {}
for _row in MAPPING:
    _BY_TYPE.setdefault(_norm(_row.types_of_harm), []).append(_row)


class Unmapped(NamedTuple):
    reason: str  # "unknown_types_of_harm" | "unmapped_specific_harm"
    detail: str


def lookup(types_of_harm: str, specific_harms: str) -> MappingRow | Unmapped:
    """The table row for a Do-Not-Answer row, or why there is none.

    An exact name match wins; otherwise the longest table name that the CSV name starts with
    (MAPPING.md shortens a few very long names).
    """
    rows = _BY_TYPE.get(_norm(types_of_harm))
    if rows is None:
        return Unmapped("unknown_types_of_harm", types_of_harm)
    name = specific_harm_name(specific_harms)
    exact = [row for row in rows if _norm(row.specific_harm) == name]
    if exact:
        return exact[0]
    prefixed = [row for row in rows if name.startswith(_norm(row.specific_harm))]
    if prefixed:
        return max(prefixed, key=lambda row: len(row.specific_harm))
    return Unmapped("unmapped_specific_harm", f"{types_of_harm} / {specific_harms[:80]}")


def mapping_table_markdown() -> str:
    """The table as Markdown (docs/data.md embeds it; a test compares it with MAPPING.md)."""
    lines = ["| types_of_harm | specific_harms | n | HAIR category | fit |", "|---|---|---|---|---|"]
    for row in MAPPING:
        lines.append(f"| {row.types_of_harm} | {row.specific_harm} | {row.rows} | {row.category.display_name} | {row.fit} |")
    return "\n".join(lines)
