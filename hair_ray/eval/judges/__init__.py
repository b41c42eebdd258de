"""Refusal judges behind one interface (`base.Judge`); `make_judge` builds one from its config."""

from hair_ray.eval.judges.base import Judge, Verdict, make_judge

__all__ = ["Judge", "Verdict", "make_judge"]
