"""Atomic file writes: every file we write is either complete or absent.

A write goes to a temporary file in the target's directory, is flushed and fsync'ed, and then
renamed over the target with `os.replace` (atomic on POSIX and Windows). If anything fails
before the rename, the temporary file is deleted and the previous target is left untouched.

Temporary files are named `.<target>.<host>.<pid>.<random>.tmp`, so that the temp file of a writer
that was killed can be told from one still being written: `remove_orphaned_temp_files` deletes those
whose process is gone on this host. `check_writable_dir` says up front whether an output directory
can be written, before any long work starts. `file_sha256` is the content hash that binds files to
each other (snapshot sidecars to their pkl, benchmark results to their generator).
"""
import contextlib
import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import IO, Iterator, List, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "remove_orphaned_temp_files",
           "check_writable_dir", "file_sha256"]

_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _host_tag() -> str:
    """This machine's name, reduced to characters that cannot be confused with the name's separators."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname() or "host")[:40] or "host"


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself where the platform allows opening directories."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", encoding: Union[str, None] = None) -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on success it replaces `path` atomically.

    `mode` must be a write mode ('w', 'wb', 'wt', 'x', 'xb'). With 'x' modes an existing target
    is an error, checked both before writing and just before the rename.
    """
    if not set(mode) <= set("wxbt") or ("w" in mode) == ("x" in mode):
        raise ValueError(f"atomic_write mode must be 'w', 'wb', 'wt', 'x' or 'xb', got {mode!r}")
    target = Path(os.fspath(path))
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"cannot write {target}: directory {directory} does not exist; create it first")
    exclusive = "x" in mode
    if exclusive and target.exists():
        raise FileExistsError(f"{target} already exists; remove it or choose another path")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    open_mode = mode.replace("x", "w")
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.{_host_tag()}.{os.getpid()}.", suffix=".tmp",
                                     dir=directory)
    try:
        with os.fdopen(fd, open_mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive and target.exists():
            raise FileExistsError(f"{target} appeared while writing; refusing to overwrite it")
        _copy_permissions(target, temp_name)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(directory)


def _copy_permissions(target: Path, temp_name: str) -> None:
    """Give the new file the old file's mode, or the usual umask-based mode for a new file.

    `mkstemp` creates files readable only by the owner; a plain `open()` would not.
    """
    try:
        os.chmod(temp_name, target.stat().st_mode & 0o7777)
        return
    except FileNotFoundError:
        pass
    os.chmod(temp_name, 0o666 & ~_current_umask())


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows (other threads may create files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (UTF-8 by default)."""
    with atomic_write(path, "w", encoding=encoding) as handle:
        handle.write(text)


def _process_is_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (owned by someone else), or we cannot tell: keep its file
    return True


def remove_orphaned_temp_files(directory: PathLike) -> List[str]:
    """Delete the temp files that `atomic_write` left in `directory` when its process was killed.

    Only files whose writer ran on this host and no longer runs are removed; files of live processes or
    of other hosts (a shared file system) are left alone, and every reader ignores them anyway (they are
    hidden and never match a target name). Returns the names removed; errors are ignored.
    """
    removed: List[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    host = _host_tag()
    for name in names:
        match = _TEMP_NAME.match(name)
        if not match or match.group("host") != host or _process_is_running(int(match.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    return removed


def check_writable_dir(path: PathLike, what: str = "output directory") -> None:
    """Raise a one-sentence error unless files can be written in `path` (existing, or to be created).

    Looks for the nearest existing directory on the way up and writes (and removes) a probe file there,
    which also catches read-only file systems and ACLs that permission bits do not show. Creates nothing
    that outlives the call. `what` names the option in messages, e.g. "--outdir".
    """
    target = os.path.abspath(os.fspath(path))
    existing = target
    while not os.path.lexists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        where = "is a file" if existing == target else f"is inside {existing}, which is a file"
        raise NotADirectoryError(f"{what} {target} {where}, not a directory; choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=existing)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise PermissionError(f"cannot write to {what} {target} ({reason} in {existing}); choose another "
                              "directory or fix its permissions") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
