"""Reading and following the local endpoint's logs (the request log and the server's output)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from aml_client.local import _state


def log_file(which: str = "access") -> Path:
    """The request log (``access``) or the server's own output (``server``).

    The paths are fixed per ``AMLC_HOME``, so the logs stay readable after the endpoint stops.
    """
    if which == "server":
        return _state.server_log_file()
    if which == "access":
        return _state.access_log_file()
    raise ValueError(f"unknown log {which!r}")


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of ``path`` (without newlines); reads only the end of the file."""
    if lines <= 0 or not path.is_file():
        return []
    block = 8192
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= lines:
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    text = data.decode("utf-8", "replace").splitlines()
    return text[-lines:]


def follow(path: Path, *, poll_s: float = 0.25, from_start: bool = False) -> Iterator[str]:
    """Yield lines appended to ``path`` as they come (``tail -F``), forever.

    Survives the file appearing later, being truncated or replaced (a new ``local up``).
    """
    handle = None
    inode = None
    pending = ""
    try:
        while True:
            if handle is None:
                try:
                    handle = path.open("r", encoding="utf-8", errors="replace")
                    inode = os.fstat(handle.fileno()).st_ino
                    if not from_start:
                        handle.seek(0, os.SEEK_END)
                    from_start = True  # a file that appears later is read from its start
                except FileNotFoundError:
                    time.sleep(poll_s)
                    continue
            chunk = handle.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split("\n")
                yield from complete
                continue
            try:
                st = os.stat(path)
                replaced = st.st_ino != inode
                truncated = st.st_size < handle.tell()
            except FileNotFoundError:
                replaced, truncated = True, False
            if replaced:
                handle.close()
                handle = None
            elif truncated:
                handle.seek(0)
            time.sleep(poll_s)
    finally:
        if handle is not None:
            handle.close()
