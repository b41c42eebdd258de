"""One error surface for every `hair-ray` command: an `error: …` paragraph and an exit code per class.

    0    done
    1    a defect in hair_ray: the traceback is printed (please report it)
    2    invalid input: a config field, a data file, a model, benchmark or judge that is unusable
    3    the command would destroy earlier results: resume, choose another folder, or --overwrite
    4    a checkpoint that is incomplete, written under another config, or unsafe to load
    5    the cluster or a service: resources that do not fit, an actor that did not start or
         answer in time, a teacher or judge endpoint that refused
    6    the machine: disk full, permission denied, a file where a folder should be
    130  interrupted (Ctrl-C)

`hair-ray --debug …` (or HAIR_RAY_DEBUG=1) re-raises instead, so the traceback is shown.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer

EXIT_DEFECT = 1
EXIT_INPUT = 2
EXIT_WOULD_OVERWRITE = 3
EXIT_CHECKPOINT = 4
EXIT_CLUSTER = 5
EXIT_MACHINE = 6
EXIT_INTERRUPTED = 130

DEBUG_ENV = "HAIR_RAY_DEBUG"

_MACHINE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a file stands where a folder should be",
    errno.EISDIR: "a folder stands where a file should be",
    errno.EEXIST: "a file stands where a folder should be",
    errno.ENAMETOOLONG: "the path is too long",
}


class WouldOverwriteError(FileExistsError):
    """A command would replace earlier results: the message says how to keep or replace them."""


class ServiceError(RuntimeError):
    """A cluster actor or an outside service (teacher, judge) did not do its part."""


def _cause(exc: BaseException) -> BaseException:
    """The error raised inside a Ray task or actor, when Ray wrapped one."""
    inner = getattr(exc, "cause", None)
    return inner if isinstance(inner, BaseException) and inner is not exc else exc


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error (EXIT_DEFECT for anything unforeseen)."""
    from hair_ray.config import ConfigError
    from hair_ray.train.checkpoint import CheckpointError
    from hair_ray.train.placement import PlacementError
    from hair_ray.train.preflight import ChecksFailed

    exc = _cause(exc)
    if isinstance(exc, ChecksFailed):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, WouldOverwriteError):
        return EXIT_WOULD_OVERWRITE
    if isinstance(exc, CheckpointError):
        return EXIT_CHECKPOINT
    if isinstance(exc, (ConfigError, ValueError, FileNotFoundError, UnicodeDecodeError)):
        return EXIT_INPUT
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
        return EXIT_MACHINE
    if isinstance(exc, MemoryError):
        return EXIT_MACHINE
    if isinstance(exc, (PlacementError, ServiceError, TimeoutError, ConnectionError)) or _is_ray_error(exc):
        return EXIT_CLUSTER
    if isinstance(exc, OSError):
        return EXIT_MACHINE
    return EXIT_DEFECT


def _is_ray_error(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayError
    except ImportError:  # ray is a dependency; a broken install is a defect, not this error
        return False
    return isinstance(exc, RayError)


def describe(exc: BaseException) -> str:
    """One paragraph: what went wrong, naming the file, field or resource."""
    exc = _cause(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; a run resumes from its last checkpoint with checkpoint.resume=auto"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
        where = " → ".join(str(p) for p in (exc.filename, exc.filename2) if p)
        return f"{_MACHINE_ERRNOS[exc.errno]}{f': {where}' if where else ''} ({exc.strerror})"
    if isinstance(exc, FileNotFoundError) and exc.errno is not None and exc.filename:
        return f"no such file or folder: {exc.filename}"
    if isinstance(exc, MemoryError):
        return "out of memory: lower the batch (algo.prompts_per_step, learner.samples_per_micro_batch) or the model size"
    text = str(exc).strip() or type(exc).__name__
    if _is_ray_error(exc):
        # Ray's messages run to dozens of lines (task ids, the remote traceback): keep the first.
        return f"{type(exc).__name__}: {text.splitlines()[0]} (HAIR_RAY_DEBUG=1 or --debug shows all of it)"
    return text


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(command: F) -> F:
    """Wrap a Typer command: its errors become `error: …` on stderr and their exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BaseException as exc:
            import click

            if isinstance(exc, click.ClickException):
                raise
            code = exit_code(exc)
            if code == EXIT_DEFECT or debug_enabled():
                raise
            typer.echo(f"error: {describe(exc)}", err=True)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]
