"""paho-mqtt (a client written by others) wrapped for blocking tests."""

from __future__ import annotations

import queue
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

WAIT = 5.0


class Paho:
    """One paho client on its own network thread; received messages land in a queue."""

    def __init__(
        self,
        port: int,
        client_id: str = "",
        *,
        clean_session: bool = True,
        keepalive: int = 60,
        protocol: MQTTProtocolVersion = mqtt.MQTTv311,
        will: tuple[str, bytes, int, bool] | None = None,
    ) -> None:
        self.port = port
        self.keepalive = keepalive
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=protocol,
        )
        self.client.max_inflight_messages_set(100)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain)
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.session_present: bool | None = None
        self.connect_code: int | None = None
        self._subacks: dict[int, list[int]] = {}
        self._suback_event = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        self.session_present = bool(flags.session_present)
        self.connect_code = int(reason.value)
        self.connected.set()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        with self._suback_event:
            self._subacks[mid] = [int(code.value) for code in codes]
            self._suback_event.notify_all()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self.disconnected.set()
        # No automatic reconnect: a test that wants one says so.
        threading.Thread(target=self.client.loop_stop, daemon=True).start()

    def connect(self) -> Paho:
        self.client.connect("127.0.0.1", self.port, self.keepalive)
        self.client.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"
        return self

    def subscribe(self, topic_filter: str, qos: int = 0) -> list[int]:
        result, mid = self.client.subscribe(topic_filter, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert mid is not None
        with self._suback_event:
            assert self._suback_event.wait_for(lambda: mid in self._subacks, WAIT), "no SUBACK"
            return self._subacks.pop(mid)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0,
                retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(WAIT)
        assert info.is_published()

    def expect(self, count: int = 1, timeout: float = WAIT) -> list[mqtt.MQTTMessage]:
        return [self.messages.get(timeout=timeout) for _ in range(count)]

    def nothing_within(self, timeout: float = 0.5) -> bool:
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        self.messages.put(message)
        return False

    def disconnect(self) -> None:
        self.client.disconnect()
        self.disconnected.wait(WAIT)
        self.client.loop_stop()
