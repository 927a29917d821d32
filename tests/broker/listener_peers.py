"""Certificates and paho clients for the listener tests (TLS, WebSocket).

The certificates are made by ``trustme`` for each test module: a CA, a server
certificate for ``localhost`` and 127.0.0.1, a client certificate whose Common
Name is ``alice``, and one that expired yesterday. paho (a client written by
others) connects over TCP, TLS, WebSocket or WebSocket over TLS.
"""

from __future__ import annotations

import datetime
import queue
import ssl
import threading
from pathlib import Path
from typing import Any

import attrs
import paho.mqtt.client as mqtt
import trustme
from paho.mqtt.enums import CallbackAPIVersion

WAIT = 5.0


@attrs.frozen
class Certificates:
    """PEM files of one test module's CA and the certificates it issued."""

    ca: Path
    server: Path
    """The server's key and certificate chain in one file."""
    client: Path
    """Key and chain of a client whose Common Name is ``alice``."""
    expired_client: Path
    other_ca: Path
    """A CA that signed none of these."""


def make_certificates(directory: Path) -> Certificates:
    ca = trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    files = Certificates(
        ca=directory / "ca.pem", server=directory / "server.pem",
        client=directory / "client.pem", expired_client=directory / "expired.pem",
        other_ca=directory / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(files.server))
    ca.issue_cert("alice.example", common_name="alice") \
        .private_key_and_cert_chain_pem.write_to_path(str(files.client))
    ca.issue_cert("bob.example", common_name="bob", not_before=now - datetime.timedelta(days=3),
                  not_after=now - datetime.timedelta(days=1)) \
        .private_key_and_cert_chain_pem.write_to_path(str(files.expired_client))
    trustme.CA().cert_pem.write_to_path(str(files.other_ca))
    return files


class PahoPeer:
    """One paho client with its network thread; what it receives lands in a queue."""

    def __init__(self, port: int, client_id: str, *, transport: str = "tcp",
                 ca: Path | None = None, certificate: Path | None = None,
                 path: str = "/mqtt") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  transport="websockets" if transport in ("ws", "wss")
                                  else "tcp")
        if transport in ("ws", "wss"):
            self.client.ws_set_options(path=path)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca),
                                certfile=str(certificate) if certificate else None,
                                cert_reqs=ssl.CERT_REQUIRED)
        self.port = port
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.connect_code: int | None = None
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda *_args: self.subscribed.set()

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self.connect_code = int(reason.value)
        self.connected.set()

    def connect(self) -> PahoPeer:
        self.client.connect("127.0.0.1", self.port, 30)
        self.client.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"
        assert self.connect_code == 0
        return self

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic_filter, qos)
        assert self.subscribed.wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos).wait_for_publish(WAIT)

    def received(self) -> tuple[str, bytes]:
        message = self.messages.get(timeout=WAIT)
        return message.topic, bytes(message.payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
