"""``mqttref passwd``: create and update password files, as mosquitto_passwd does.

The file is the one mosquitto 2.0 reads (``user:$7$<iterations>$<salt>$<hash>``,
PBKDF2-SHA512; ``mqttref.impl.auth.passwords``), so either broker can use what
either tool wrote. The options are mosquitto_passwd's:

    mqttref passwd [-H sha512-pbkdf2|sha512] [-c | -D] FILE USER       (asks twice)
    mqttref passwd [-H sha512-pbkdf2|sha512] [-c] -b FILE USER PASSWORD
    mqttref passwd -U FILE                       (hash a file of user:password lines)

plus ``-I N`` for the PBKDF2 iteration count. The file is replaced whole and at once
(a temporary file renamed over it), so a broker reading it on SIGHUP never sees half
a file; a new file is readable by its owner only.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mqttref.impl.auth.passwords import (
    ALGORITHMS,
    DEFAULT_ITERATIONS,
    MAX_ITERATIONS,
    PBKDF2_SHA512,
    PasswordFileError,
    PasswordTable,
    check_user_name,
    hash_password,
    parse_password_file,
    plain_lines_to_hashed,
)

EXIT_FAILED = 1
EXIT_USAGE = 2


class PasswdError(Exception):
    """What went wrong, said in one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def register(add_parser: Any) -> None:
    parser = add_parser(
        "passwd",
        help="create and update password files (mosquitto_passwd's format and options)",
        description=(
            "Manage a password file for the broker's password_file, in the format of "
            "mosquitto 2.0's mosquitto_passwd (salted PBKDF2-SHA512): "
            "'passwd [-c|-D] FILE USER' asks for the password, "
            "'passwd [-c] -b FILE USER PASSWORD' takes it from the command line, "
            "'passwd -U FILE' hashes a file of user:password lines."
        ),
    )
    parser.add_argument("-c", dest="create", action="store_true",
                        help="create a new password file, replacing any existing one")
    parser.add_argument("-D", dest="delete", action="store_true",
                        help="delete the user instead of adding or updating it")
    parser.add_argument("-b", dest="batch", action="store_true",
                        help="batch mode: the password is the last argument")
    parser.add_argument("-U", dest="upgrade", action="store_true",
                        help="hash every plain user:password line of FILE")
    parser.add_argument("-H", dest="algorithm", choices=ALGORITHMS, default=PBKDF2_SHA512,
                        help="hash: sha512-pbkdf2 (the default, as mosquitto 2.0) or sha512 "
                        "(mosquitto 1.6's)")
    parser.add_argument("-I", dest="iterations", type=int, default=DEFAULT_ITERATIONS,
                        metavar="N", help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS}; "
                        "mosquitto_passwd 2.0 uses 101)")
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("user", nargs="?", metavar="USER")
    parser.add_argument("password", nargs="?", metavar="PASSWORD")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        _run(args)
    except PasswdError as exc:
        print(f"mqttref passwd: error: {exc}", file=sys.stderr)
        return exc.code
    return 0


def _run(args: argparse.Namespace) -> None:
    if not 1 <= args.iterations <= MAX_ITERATIONS:
        raise PasswdError(f"-I: iterations must be 1 to {MAX_ITERATIONS}", EXIT_USAGE)
    if args.upgrade:
        if args.create or args.delete or args.batch or args.user is not None:
            raise PasswdError("-U takes only FILE", EXIT_USAGE)
        text = _read(args.file)
        try:
            hashed = plain_lines_to_hashed(text, str(args.file), algorithm=args.algorithm,
                                           iterations=args.iterations)
        except PasswordFileError as exc:
            raise PasswdError(str(exc)) from exc
        _write(args.file, hashed)
        return
    user = args.user
    if user is None:
        raise PasswdError("USER is missing", EXIT_USAGE)
    if args.create and args.delete:
        raise PasswdError("-c and -D together make no sense", EXIT_USAGE)
    if args.delete:
        if args.batch or args.password is not None:
            raise PasswdError("-D takes FILE USER, no password", EXIT_USAGE)
    elif args.batch != (args.password is not None):
        raise PasswdError("give PASSWORD with -b, and only with -b", EXIT_USAGE)
    if (problem := check_user_name(user)) is not None:
        raise PasswdError(f"user {user!r}: {problem}", EXIT_USAGE)
    table = PasswordTable() if args.create else _load(args.file)
    if args.delete:
        if user not in table:
            raise PasswdError(f"user {user!r} is not in {args.file}")
        _write(args.file, table.without_user(user).to_text())
        return
    password = args.password if args.batch else _ask_password()
    entry = hash_password(password.encode("utf-8"), algorithm=args.algorithm,
                          iterations=args.iterations)
    _write(args.file, table.with_user(user, entry).to_text())


def _ask_password() -> str:
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Reenter password: ")
    except EOFError:
        raise PasswdError("no password given (use -b to pass it as an argument)") from None
    if first != second:
        raise PasswdError("the passwords do not match")
    return first


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PasswdError(f"{path} does not exist (-c creates it)") from None
    except OSError as exc:
        raise PasswdError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise PasswdError(f"{path} is not UTF-8 text") from None


def _load(path: Path) -> PasswordTable:
    try:
        return parse_password_file(_read(path), str(path))
    except PasswordFileError as exc:
        raise PasswdError(str(exc)) from exc


def _write(path: Path, text: str) -> None:
    """Replace the file at once, keeping its permissions (0600 for a new one)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    except OSError as exc:
        raise PasswdError(f"cannot write {path}: {exc.strerror or exc}") from exc
    directory = path.parent if str(path.parent) else Path()
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    except OSError as exc:
        raise PasswdError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise PasswdError(f"cannot write {path}: {exc.strerror or exc}") from exc
