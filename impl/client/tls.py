"""The client's TLS settings, as mosquitto_pub spells them, and the ``ssl`` context they make.

Meaning of each setting (mosquitto_pub(1) 2.0):

- ``cafile`` / ``capath``: the certificate authorities the server's certificate
  chain is verified against. Either turns TLS on.
- ``use_os_certs``: trust the system's authorities (mosquitto's
  ``--tls-use-os-certs``; what an ``mqtts://`` or ``wss://`` URL implies when no
  ``cafile`` is given).
- ``certfile`` / ``keyfile``: the client's own certificate and key, for a broker
  that asks for one; both or neither, as in mosquitto (they may name one file).
- ``insecure``: the server's host name is not checked against its certificate.
  The chain is still verified against the trusted authorities, as in
  mosquitto, where ``--insecure`` only turns off the host name check.
- ``tls_version``: the lowest version offered, ``tlsv1.2`` (the default) or
  ``tlsv1.3``. mosquitto's ``tlsv1.1`` is refused: RFC 8996 retired it.

Every bad combination or unreadable file is an ``InvalidArgument`` naming the
option and the file, raised before any connection is tried.
"""

from __future__ import annotations

import os
import ssl

import attrs

from mqttref.impl.client.errors import InvalidArgument

TLS_VERSIONS = {
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


@attrs.frozen
class TlsSettings:
    """What the command line (or a Python caller) asks of TLS; ``context()`` checks and builds."""

    cafile: str | None = None
    capath: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False
    tls_version: str = "tlsv1.2"
    use_os_certs: bool = False

    @property
    def enabled(self) -> bool:
        """TLS is on when something says whom to trust (mosquitto: --cafile or --capath)."""
        return self.cafile is not None or self.capath is not None or self.use_os_certs

    def check(self) -> None:
        """Options that need TLS, or each other, without touching the files."""
        if self.tls_version not in TLS_VERSIONS:
            known = " or ".join(TLS_VERSIONS)
            raise InvalidArgument(f"--tls-version must be {known}, not {self.tls_version!r}")
        if (self.keyfile is None) != (self.certfile is None):
            raise InvalidArgument(
                "--cert and --key go together: give both (they may name one PEM file "
                "holding the certificate and the key)"
            )
        if not self.enabled:
            used = [
                flag
                for flag, set_ in (
                    ("--cert", self.certfile is not None),
                    ("--key", self.keyfile is not None),
                    ("--insecure", self.insecure),
                    ("--tls-version", self.tls_version != "tlsv1.2"),
                )
                if set_
            ]
            if used:
                verb = "needs" if len(used) == 1 else "need"
                raise InvalidArgument(
                    f"{', '.join(used)} {verb} TLS: give --cafile or --capath "
                    "(or an mqtts:// or wss:// URL)"
                )

    def context(self) -> ssl.SSLContext:
        """An ``ssl`` client context: chain verified, host name checked unless ``insecure``."""
        self.check()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
        context.minimum_version = TLS_VERSIONS[self.tls_version]
        if self.use_os_certs:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.cafile is not None:
            _readable("--cafile", self.cafile, directory=False)
            try:
                context.load_verify_locations(cafile=self.cafile)
            except ssl.SSLError as exc:
                raise InvalidArgument(
                    f"--cafile {self.cafile}: no PEM certificate in it ({exc.reason})"
                ) from exc
        if self.capath is not None:
            _readable("--capath", self.capath, directory=True)
            context.load_verify_locations(capath=self.capath)
        if self.certfile is not None:
            _readable("--cert", self.certfile, directory=False)
            if self.keyfile is not None:
                _readable("--key", self.keyfile, directory=False)
            try:
                context.load_cert_chain(self.certfile, self.keyfile)
            except ssl.SSLError as exc:
                files = ", ".join(f for f in (self.certfile, self.keyfile) if f is not None)
                raise InvalidArgument(
                    f"--cert/--key {files}: not a matching PEM certificate and private key "
                    f"({exc.reason})"
                ) from exc
        context.check_hostname = not self.insecure
        return context


def _readable(option: str, path: str, *, directory: bool) -> None:
    """A clear error naming the option and the file, instead of OpenSSL's."""
    kind = "a directory" if directory else "a file"
    if directory != os.path.isdir(path) and os.path.exists(path):
        raise InvalidArgument(f"{option} {path}: not {kind}")
    try:
        if directory:
            os.listdir(path)
        else:
            with open(path, "rb"):
                pass
    except OSError as exc:
        raise InvalidArgument(f"cannot read {option} {path}: {exc.strerror}") from exc
