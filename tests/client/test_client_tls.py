"""The client over TLS, as a library: ``Client(tls=TlsSettings(...).context())`` and
``Client.from_url("mqtts://...")`` against the mqttref broker's TLS listeners.

What ``insecure`` means is checked against a server whose certificate names
another host: without it the handshake fails on the name, with it the
connection opens, and the chain is still verified (another CA still fails), as
mosquitto_pub documents ``--insecure``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mqttref.client import Client, ConnectionClosed
from mqttref.impl.broker.config import Config
from mqttref.impl.broker.listeners import Listener
from mqttref.impl.client.errors import InvalidArgument, TLSHandshakeFailed
from mqttref.impl.client.tls import TlsSettings
from tests.broker.listener_peers import Certificates, make_certificates
from tests.helpers.broker_thread import BrokerThread


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("client-tls"))


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A CA file and a server key+certificate that names only ``broker.example``."""
    directory = tmp_path_factory.mktemp("elsewhere")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server = directory / "server.pem"
    ca.issue_cert("broker.example").private_key_and_cert_chain_pem.write_to_path(str(server))
    return directory / "ca.pem", server


def running(*listeners: Listener) -> BrokerThread:
    return BrokerThread(Config(port=0, listeners=listeners))


@pytest.fixture(scope="module")
def tls_broker(certificates: Certificates) -> Iterator[BrokerThread]:
    with running(Listener(port=0, transport="tls", certfile=str(certificates.server))) as broker:
        yield broker


@pytest.fixture(scope="module")
def misnamed_broker(elsewhere: tuple[Path, Path]) -> Iterator[BrokerThread]:
    with running(Listener(port=0, transport="tls", certfile=str(elsewhere[1]))) as broker:
        yield broker


async def round_trip(client: Client, topic: str = "tls/t") -> bytes:
    async with client:
        await client.subscribe(topic, 1)
        await client.publish(topic, b"secret" * 20_000, 1)
        async for message in client.messages:
            return message.payload
    raise AssertionError("no message")


async def test_client_with_a_cafile_context_publishes_and_receives_over_tls(
    tls_broker: BrokerThread, certificates: Certificates
) -> None:
    context = TlsSettings(cafile=str(certificates.ca)).context()
    client = Client("localhost", tls_broker.port, tls=context)
    assert await round_trip(client) == b"secret" * 20_000


async def test_from_url_mqtts_with_user_and_password_reaches_the_tls_listener(
    tls_broker: BrokerThread, certificates: Certificates
) -> None:
    context = TlsSettings(cafile=str(certificates.ca)).context()
    client = Client.from_url(f"mqtts://someone:pw@localhost:{tls_broker.port}", tls=context)
    assert client.port == tls_broker.port
    assert await round_trip(client) == b"secret" * 20_000


async def test_a_certificate_for_another_host_fails_unless_insecure(
    misnamed_broker: BrokerThread, elsewhere: tuple[Path, Path]
) -> None:
    ca = str(elsewhere[0])
    checked = Client("127.0.0.1", misnamed_broker.port, tls=TlsSettings(cafile=ca).context())
    with pytest.raises(TLSHandshakeFailed, match="IP address mismatch"):
        await checked.connect()
    insecure = TlsSettings(cafile=ca, insecure=True).context()
    assert await round_trip(Client("127.0.0.1", misnamed_broker.port, tls=insecure)) == (
        b"secret" * 20_000
    )


async def test_insecure_still_verifies_the_chain(
    misnamed_broker: BrokerThread, certificates: Certificates
) -> None:
    context = TlsSettings(cafile=str(certificates.other_ca), insecure=True).context()
    with pytest.raises(TLSHandshakeFailed, match="unable to get local issuer certificate"):
        await Client("127.0.0.1", misnamed_broker.port, tls=context).connect()


async def test_client_certificate_opens_a_listener_that_requires_one(
    certificates: Certificates,
) -> None:
    listener = Listener(port=0, transport="tls", certfile=str(certificates.server),
                        cafile=str(certificates.ca), require_certificate=True)  # fmt: skip
    with running(listener) as broker:
        ca, client_pem = str(certificates.ca), str(certificates.client)
        mutual = TlsSettings(cafile=ca, certfile=client_pem, keyfile=client_pem).context()
        assert await round_trip(Client("localhost", broker.port, tls=mutual)) == (
            b"secret" * 20_000
        )
        anonymous = Client("localhost", broker.port, tls=TlsSettings(cafile=ca).context())
        # TLS 1.3: the server judges our (missing) certificate after the client's side of
        # the handshake is done, so the refusal shows as the connection ending (reset, or
        # a "certificate required" alert, as the server's TLS stack sends it).
        with pytest.raises(ConnectionClosed):
            await anonymous.connect()


def test_from_url_refuses_tls_on_a_plain_url_and_a_topic_path() -> None:
    with pytest.raises(InvalidArgument, match="is not a TLS URL"):
        Client.from_url("mqtt://localhost", tls=True)
    with pytest.raises(InvalidArgument, match="tls=False says no"):
        Client.from_url("mqtts://localhost", tls=False)
    with pytest.raises(InvalidArgument, match="the path of an mqtt:// URL is a topic"):
        Client.from_url("mqtt://localhost/a/b")
    with pytest.raises(InvalidArgument, match="given both in the URL and as an argument"):
        Client.from_url("mqtt://u:p@localhost", username="v")
