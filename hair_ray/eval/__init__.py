"""Stage D: evaluation of a policy on held-out benchmarks (refusal, over-refusal, usefulness).

- `benchmarks`: prompt sets declared as data (a file or hub dataset plus a column map);
- `judges`: who decides whether a response refuses (keyword rule, trained classifier, LLM);
- `engines`: greedy generation and reference log-likelihoods through the rollout engine code;
- `metrics`: rates with Wilson intervals, per benchmark and category (pure functions);
- `outputs`: eval.json, generations.jsonl, the terminal table and the comparison figure;
- `run`: one evaluation of several policies, side by side (`hair-ray eval`).
"""
