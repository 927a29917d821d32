"""A valid CONNECT answered by an MQTT packet that no accepting server sends first is that
server's FAIL of the statement the answer breaks, not an unreachable target (exit 2).

The peers are plain TCP servers that answer every CONNECT with fixed bytes: a DISCONNECT
instead of CONNACK, a CONNACK with a reason code of no table, and a frame of a reserved
packet type (still an unreachable target: nothing says an MQTT server sent it). Before
this was settled, the first two ended the run with "does not answer CONNECT like an MQTT
broker", so a broker breaking [MQTT-3.2.2-8] at every CONNECT got no verdict (found by the
5.0 fault matrix, docs/spec/oracle-power.md).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mqttref.oracle.runner import Verdict
from mqttref.oracle.target import Unreachable, evaluate


@contextmanager
def answering(reply: bytes) -> Iterator[int]:
    """A TCP server on loopback that answers whatever arrives with ``reply``, then holds
    the connection until the client closes it."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.settimeout(10.0)
            try:
                if sock.recv(4096):
                    sock.sendall(reply)
                while sock.recv(4096):
                    pass
            except OSError:
                pass

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()


def _verdicts(reply: bytes) -> dict[str, Verdict]:
    with answering(reply) as port:
        report = evaluate("127.0.0.1", port, protocol="5", budget=20.0, explore=False,
                          probe_profile=False)
    return {v.statement.id: v.verdict for v in report.verdicts}


def test_a_connect_answered_with_disconnect_fails_the_connack_first_statement() -> None:
    verdicts = _verdicts(bytes((0xE0, 2, 0x80, 0)))
    assert verdicts["MQTT-3.2.0-1"] is Verdict.FAIL


def test_a_connack_with_a_code_of_no_table_fails_3_2_2_8() -> None:
    verdicts = _verdicts(bytes((0x20, 3, 0, 0x03, 0)))
    assert verdicts["MQTT-3.2.2-8"] is Verdict.FAIL
    assert Verdict.PASS not in verdicts.values()
    assert [sid for sid, v in verdicts.items() if v is Verdict.FAIL] == ["MQTT-3.2.2-8"]


def test_a_first_frame_of_no_answer_to_connect_still_makes_the_target_unreachable() -> None:
    # Packet type 0 (reserved): whatever sent it, it does not answer a CONNECT.
    with answering(bytes((0x00, 0))) as port, pytest.raises(Unreachable):
        evaluate("127.0.0.1", port, protocol="5", only=["connack_first_and_once_v5"],
                 budget=20.0, explore=False, probe_profile=False)
