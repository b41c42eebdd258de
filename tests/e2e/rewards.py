"""Programmatic rewards for the loop tests (loaded by `reward.function`)."""

TARGET = "e"


def target_letter_share(prompts: list[str], responses: list[str], categories: list[str]) -> list[float]:
    """The share of the response's characters that are the letter 'e': easy for a tiny random
    policy to move, hard to move by chance."""
    return [response.count(TARGET) / max(1, len(response)) for response in responses]
