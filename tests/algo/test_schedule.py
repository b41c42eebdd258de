import pytest

from hair_ray.algo.schedule import lr_factor


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # warm-up (step + 1) / 2 for steps 0, 1; then 8 decay steps: step 6 is halfway, step 10 the end
        ("constant", [0.5, 1.0, 1.0, 1.0, 1.0]),
        ("cosine", [0.5, 1.0, 1.0, 0.5, 0.0]),
        ("linear", [0.5, 1.0, 1.0, 0.5, 0.0]),
    ],
)
def test_warm_up_then_the_schedule(schedule, expected):
    factors = [lr_factor(s, warmup_steps=2, total_steps=10, schedule=schedule) for s in (0, 1, 2, 6, 10)]
    assert factors == pytest.approx(expected)


def test_cosine_a_quarter_of_the_way_and_past_the_end():
    # progress 0.25: (1 + cos(π/4)) / 2 = 0.853553…; past the last step the factor stays at 0
    assert lr_factor(2, warmup_steps=0, total_steps=8, schedule="cosine") == pytest.approx(0.8535533905932737)
    assert lr_factor(12, warmup_steps=0, total_steps=8, schedule="linear") == 0.0


def test_the_first_step_without_warm_up_trains_at_the_full_rate():
    assert lr_factor(0, warmup_steps=0, total_steps=5, schedule="linear") == 1.0
