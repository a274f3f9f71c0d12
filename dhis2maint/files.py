"""Files that appear only once completely written: :func:`atomic_output`.

Standard library only.
"""
import contextlib
import os
import sys
from typing import IO, Any, Iterator, Optional, Union

__all__ = ["atomic_output", "probe_folder"]


def _new_file_mode() -> int:
    """The permission bits a newly created file gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def probe_folder(folder: str) -> None:
    """Create and delete a file in ``folder``, so a folder that will not take the output
    is found before any work is done; raises the OSError that says why."""
    import tempfile

    handle, probe = tempfile.mkstemp(dir=folder, prefix=".dhis2maint-probe-")
    os.close(handle)
    os.unlink(probe)


@contextlib.contextmanager
def atomic_output(path: Union[str, "os.PathLike[str]", None], mode: str = "w",
                  encoding: str = "utf-8", newline: Optional[str] = None) -> Iterator[IO[Any]]:
    """Write a file all at once: ``with atomic_output("report.html") as out: …``.

    Yields a file object for a temporary file in the same directory; when the
    block ends normally the data is flushed and fsync'ed and the temporary file
    replaces ``path`` (``os.replace``, atomic on POSIX and Windows).  When the
    block raises anything -- KeyboardInterrupt included -- the temporary file is
    deleted and ``path`` is left as it was.  A new file gets the usual umask
    permissions; an existing one keeps its mode.

    ``path`` ``None`` or ``"-"`` yields ``sys.stdout`` (``sys.stdout.buffer`` for a
    binary ``mode``), which is flushed but not closed.  ``mode`` is ``"w"``,
    ``"wt"`` or ``"wb"``.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError("atomic_output writes new files: mode must be 'w', 'wt' or 'wb'")
    binary = "b" in mode
    if path is None or path == "-":
        stream = sys.stdout.buffer if binary else sys.stdout
        yield stream
        stream.flush()
        return
    import tempfile

    # Through a symlink to its target, so a linked report location stays linked.
    path = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(path)
    try:
        file_mode = os.stat(path).st_mode & 0o7777
    except OSError:
        file_mode = _new_file_mode()
    fd, temp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                suffix=".part")
    try:
        handle = os.fdopen(fd, mode, **({} if binary else  # type: ignore[call-overload]  # str mode
                                        {"encoding": encoding, "newline": newline}))
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, file_mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """Make the rename durable (POSIX); a no-op where directories can't be opened."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
