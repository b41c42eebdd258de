"""Atomic writes: a reader sees the old file or folder, or the complete new one, never half.

Folders are written under a temporary sibling name and renamed into place; a file lock keeps
two processes (two Ray actors preparing the same model, say) from building the same thing twice.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock


def file_lock(path: Path) -> FileLock:
    """An exclusive lock across processes, held for a `with` block (its folder is made if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


def _umask() -> int:
    # os.umask can only be read by setting it; set it back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod_like_a_new_file(path: Path, *, folder: bool) -> None:
    """mkdtemp and mkstemp create 0700 / 0600: give the result the mode `mkdir` / `open` would,
    so an export or dataset is readable by whoever may read the folder it lands in."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `target` in one rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    _chmod_like_a_new_file(staging, folder=True)
    try:
        yield staging
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(staging: Path, target: Path) -> None:
    """Put the complete folder `staging` at `target` in one rename (same file system)."""
    if target.exists():
        # rename() cannot replace a non-empty folder: move the old one aside first.
        retired = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, target)


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        _chmod_like_a_new_file(Path(tmp), folder=False)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
