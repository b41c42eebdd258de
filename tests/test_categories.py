import pytest

from hair_ray.categories import CATEGORIES, CATEGORY_NAMES, Category, parse_category


def test_seven_categories_with_canonical_and_display_names():
    assert CATEGORY_NAMES == (
        "insult",
        "unfairness_discrimination",
        "crimes_illegal",
        "physical_harm",
        "mental_health",
        "privacy_property",
        "ethics_morality",
    )
    assert [c.display_name for c in CATEGORIES] == [
        "Insult",
        "Unfairness and Discrimination",
        "Crimes and Illegal Activities",
        "Physical Harm",
        "Mental Health",
        "Privacy and Property",
        "Ethics and Morality",
    ]


@pytest.mark.parametrize(
    "label, expected",
    [
        ("insult", Category.INSULT),
        ("Physical Harm", Category.PHYSICAL_HARM),
        ("Crimes_And_Illegal_Activities", Category.CRIMES_ILLEGAL),
        ("  privacy_property ", Category.PRIVACY_PROPERTY),
        ("ETHICS AND MORALITY", Category.ETHICS_MORALITY),
    ],
)
def test_parse_category_accepts_every_naming(label, expected):
    assert parse_category(label) is expected


def test_parse_category_names_the_allowed_values():
    with pytest.raises(ValueError, match=r"unknown category 'violence'; expected one of: insult, "):
        parse_category("violence")
