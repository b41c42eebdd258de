"""Waiting on Ray actors with a deadline, naming the peer: a hang becomes an error that says who
did not answer, and a failure says who failed (the first one, since in a collective the others
then block until the deadline and their errors say nothing new)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from hair_ray.errors import ServiceError


def wait_all(
    refs: Sequence,
    owners: Sequence[str],
    timeout_s: float,
    what: str,
    *,
    error: type[Exception] = ServiceError,
    name_failures: bool = True,
) -> list:
    """The results of `refs` in order. `owners[i]` names the actor behind `refs[i]`; `what` says
    what was asked of them. Raises `error` at the deadline, when an actor died, and on the first
    remote failure; `name_failures=False` lets that failure through as Ray raised it, so its own
    class (a defect's traceback, a bad input's exit code) still decides how it is reported."""
    import ray

    owner_of = dict(zip(refs, owners, strict=True))
    deadline = time.monotonic() + timeout_s
    pending = list(refs)
    results: dict = {}
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            late = ", ".join(owner_of[ref] for ref in pending)
            raise error(f"{what}: no answer within {timeout_s:g} s from {late}")
        for ref in ready:
            try:
                results[ref] = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the peer's own error, with the peer's name
                if not name_failures:
                    raise
                cause = exc.cause if exc.cause is not None else exc
                raise error(f"{what}: {owner_of[ref]} failed: {type(cause).__name__}: {cause}") from exc
            except ray.exceptions.RayActorError as exc:
                raise error(f"{what}: {owner_of[ref]} died: {exc}") from exc
    return [results[ref] for ref in refs]
