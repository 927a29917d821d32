"""The data directory: where ``mqttref broker`` keeps its database, and who holds it.

Resolution follows the XDG base directory specification: ``--data-dir DIR``
when given, else ``$XDG_DATA_HOME/mqttref`` when that variable holds an
absolute path (the specification says to ignore a relative one), else
``~/.local/share/mqttref``.

Two brokers must never share one directory: both would append to one
SQLite file and each would hand out the other's messages. The directory's
``lock`` file is held with ``fcntl.flock`` for the owner's lifetime and
holds its pid, so the refusal can say which process owns it. The kernel drops
the lock when the owner dies, even by ``kill -9``, so a stale file never
blocks a restart.

Every refusal is a ``StoreError`` with one line that names the directory and
the problem, raised before anything in the directory is written: the lock
is taken first (creating an empty ``lock`` file if there was none), and the
pid is written only by ``write_owner()``, once the store has accepted the
directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mqttref.impl.codec.errors import MQTTError

APP_NAME = "mqttref"
LOCK_NAME = "lock"
DATABASE_NAME = "mqttref.db"


class StoreError(MQTTError):
    """The store cannot be opened: the broker must not start (exit code 2)."""


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/mqttref``, or ``~/.local/share/mqttref``."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / APP_NAME
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "share" / APP_NAME


def resolve_data_dir(option: str | os.PathLike[str] | None,
                     environ: Mapping[str, str] | None = None) -> Path:
    """The directory ``--data-dir`` names (made absolute), or the default one."""
    if option is None or str(option) == "":
        return default_data_dir(environ)
    return Path(option).expanduser().absolute()


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


class DataDirectory:
    """One broker's claim on a data directory, from ``acquire()`` to ``release()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path / LOCK_NAME
        self.database_path = path / DATABASE_NAME
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"<DataDirectory {str(self.path)!r}>"

    @property
    def held(self) -> bool:
        return self._lock_fd is not None

    def acquire(self) -> None:
        """Create the directory if needed, prove it writable, and take its lock.

        The lock file is not changed here: a start that is refused after this
        (a corrupt database, say) leaves the previous owner's pid in place.
        """
        if self._lock_fd is not None:
            return
        self._make_directory()
        self._check_writable()
        self._lock_fd = self._take_lock()

    def release(self) -> None:
        """Let another broker have the directory (the file stays, unlocked)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _make_directory(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError as exc:
            raise StoreError(f"data directory {self.path}: exists and is not a directory") from exc
        except OSError as exc:
            raise StoreError(f"data directory {self.path}: cannot create it: {_why(exc)}") from exc
        if not self.path.is_dir():
            raise StoreError(f"data directory {self.path}: exists and is not a directory")

    def _check_writable(self) -> None:
        """Create and drop an unnamed file: the real test, where ``os.access`` lies to root."""
        try:
            with tempfile.TemporaryFile(dir=self.path):
                pass
        except OSError as exc:
            raise StoreError(f"data directory {self.path}: not writable: {_why(exc)}") from exc

    def _take_lock(self) -> int:
        # No O_TRUNC: a lock file held by another broker keeps its pid.
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"data directory {self.path}: cannot open the lock file "
                             f"{self.lock_path}: {_why(exc)}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _read_owner(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"process {owner}" if owner else "another process"
                raise StoreError(f"data directory {self.path}: in use by another broker "
                                 f"({who} holds {self.lock_path})") from exc
            raise StoreError(f"data directory {self.path}: cannot lock {self.lock_path}: "
                             f"{_why(exc)}") from exc
        return fd

    def write_owner(self) -> None:
        """Write our pid into the held lock file, for the message another broker gets."""
        fd = self._lock_fd
        if fd is None:
            raise StoreError(f"data directory {self.path}: not locked")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            raise StoreError(f"data directory {self.path}: cannot write the lock file "
                             f"{self.lock_path}: {_why(exc)}") from exc


def _read_owner(fd: int) -> str:
    """The pid the holder wrote, if it reads as one."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
