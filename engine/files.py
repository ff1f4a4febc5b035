"""Atomic file writes: a reader sees the old file or the whole new one, never half.

Every artifact of a run goes through here: write to a temp file in the same folder,
flush it to disk, then ``os.replace`` it over the target (atomic on POSIX).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(target: str | os.PathLike[str], durable: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success it replaces ``target``.

    The caller writes the temp path however it likes (pandas, joblib, sqlite3). On
    any exception, including KeyboardInterrupt, the temp file is removed and
    ``target`` is untouched.

    Args:
        durable: fsync the file before the rename, so it survives a power loss too.
            Without it the replace is still atomic for every process (a crash or a kill
            leaves the old file or the new one), only the operating system's own crash
            could lose the new content: right for progress notes that a later durable
            write supersedes.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # writers create the file themselves (sqlite3 refuses an empty file)
    try:
        yield tmp_path
        if durable and tmp_path.exists():
            with open(tmp_path, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


#: The name :func:`atomic_path` gives its temp file: ``.<target name>.<8 random characters>.tmp``
#: (``tempfile.mkstemp``'s), beside the target.
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")


def leftovers(folder: str | os.PathLike[str], min_age_s: float) -> list[Path]:
    """Temp files of :func:`atomic_path` in ``folder`` that a killed writer left behind.

    A writer removes its temp file on any exception, but SIGKILL or a power cut leaves
    it. Only files named as :func:`atomic_path` names them, and untouched for at least
    ``min_age_s`` seconds (a write in progress is younger), are returned.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - min_age_s
    found = []
    for path in folder.iterdir():
        if _TEMP_NAME.fullmatch(path.name):
            try:
                if path.stat().st_mtime <= cutoff:
                    found.append(path)
            except FileNotFoundError:  # its writer finished meanwhile
                continue
    return sorted(found)


def write_text(target: str | os.PathLike[str], text: str, durable: bool = True) -> None:
    """Write ``text`` to ``target`` atomically (see :func:`atomic_path` for ``durable``)."""
    with atomic_path(target, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike[str], data: Any, durable: bool = True) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", durable)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
