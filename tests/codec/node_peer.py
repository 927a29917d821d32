"""The npm package ``mqtt-packet``, run by node, as an independent codec to compare with.

``NodePeer`` keeps one ``node tests/node/peer.js`` process for the whole
test session and talks JSON lines to it. ``to_theirs`` and ``from_theirs``
map between mqttref's packet values and mqtt-packet's object shape; they are
the only place that knows mqtt-packet's field names.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mqttref.impl.codec.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    Properties,
    ProtocolLevel,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    QoS,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
PEER_SCRIPT = NODE_DIR / "peer.js"
V5 = ProtocolLevel.MQTT_5


class NodePeer:
    """One long-lived node process running mqtt-packet; requests are answered in order."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise FileNotFoundError("node")
        self._proc = subprocess.Popen(
            [node, str(PEER_SCRIPT)],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"mqtt-packet peer exited with {self._proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def parse(self, data: bytes, level: ProtocolLevel) -> dict[str, Any]:
        """mqtt-packet's parser on ``data``: {"packets", "error", "left"}."""
        return self._ask({"op": "parse", "version": int(level), "hex": data.hex()})

    def generate(self, packet: dict[str, Any], level: ProtocolLevel) -> dict[str, Any]:
        """mqtt-packet's generator: {"hex"} or {"error"}."""
        return self._ask({"op": "generate", "version": int(level), "packet": packet})

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


# ------------------------------------------------------------------ property names

PROPERTY_NAMES = {
    "payload_format_indicator": "payloadFormatIndicator",
    "message_expiry_interval": "messageExpiryInterval",
    "content_type": "contentType",
    "response_topic": "responseTopic",
    "correlation_data": "correlationData",
    "subscription_identifiers": "subscriptionIdentifier",
    "session_expiry_interval": "sessionExpiryInterval",
    "assigned_client_identifier": "assignedClientIdentifier",
    "server_keep_alive": "serverKeepAlive",
    "authentication_method": "authenticationMethod",
    "authentication_data": "authenticationData",
    "request_problem_information": "requestProblemInformation",
    "will_delay_interval": "willDelayInterval",
    "request_response_information": "requestResponseInformation",
    "response_information": "responseInformation",
    "server_reference": "serverReference",
    "reason_string": "reasonString",
    "receive_maximum": "receiveMaximum",
    "topic_alias_maximum": "topicAliasMaximum",
    "topic_alias": "topicAlias",
    "maximum_qos": "maximumQoS",
    "retain_available": "retainAvailable",
    "user_properties": "userProperties",
    "maximum_packet_size": "maximumPacketSize",
    "wildcard_subscription_available": "wildcardSubscriptionAvailable",
    "subscription_identifier_available": "subscriptionIdentifiersAvailable",
    "shared_subscription_available": "sharedSubscriptionAvailable",
}
THEIR_BOOLEANS = {
    "payload_format_indicator", "request_problem_information", "request_response_information",
    "retain_available", "wildcard_subscription_available", "subscription_identifier_available",
    "shared_subscription_available",
}  # fmt: skip
"""Byte properties that mqtt-packet represents as JS booleans (maximumQoS stays a number)."""
BINARY = {"correlation_data", "authentication_data"}
OURS_BY_THEIRS = {theirs: ours for ours, theirs in PROPERTY_NAMES.items()}


def _hex(data: bytes) -> dict[str, str]:
    return {"$hex": data.hex()}


def _unhex(value: Any) -> bytes:
    assert isinstance(value, dict), value
    return bytes.fromhex(value["$hex"])


def props_to_theirs(props: Properties) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for ours, theirs in PROPERTY_NAMES.items():
        value = getattr(props, ours)
        if value is None or value == ():
            continue
        if ours in THEIR_BOOLEANS:
            value = bool(value)
        elif ours in BINARY:
            value = _hex(value)
        elif ours == "subscription_identifiers":
            value = value[0] if len(value) == 1 else list(value)
        elif ours == "user_properties":
            grouped: dict[str, list[str]] = {}
            for name, item in value:
                grouped.setdefault(name, []).append(item)
            value = {name: items[0] if len(items) == 1 else items
                     for name, items in grouped.items()}
        out[theirs] = value
    return out or None


def props_from_theirs(theirs: dict[str, Any] | None) -> Properties:
    if not theirs:
        return Properties()
    values: dict[str, Any] = {}
    for key, raw in theirs.items():
        ours = OURS_BY_THEIRS[key]
        value: Any = raw
        if ours in THEIR_BOOLEANS:
            value = int(raw)
        elif ours in BINARY:
            value = _unhex(raw)
        elif ours == "subscription_identifiers":
            value = tuple(raw) if isinstance(raw, list) else (raw,)
        elif ours == "user_properties":
            value = tuple(
                (name, item)
                for name, items in raw.items()
                for item in (items if isinstance(items, list) else [items])
            )
        values[ours] = value
    return Properties(**values)


def normalised(packet: Packet) -> Packet:
    """User properties as a sorted multiset: mqtt-packet keeps them in a JS object keyed by
    name, which cannot keep the order of pairs with different names (see the disagreements
    doc); everything else is compared exactly."""
    import attrs

    def fix(props: Properties) -> Properties:
        return attrs.evolve(props, user_properties=tuple(sorted(props.user_properties)))

    changes: dict[str, Any] = {}
    if hasattr(packet, "properties"):
        changes["properties"] = fix(packet.properties)
    if isinstance(packet, Connect) and packet.will is not None:
        changes["will"] = attrs.evolve(packet.will, properties=fix(packet.will.properties))
    return attrs.evolve(packet, **changes) if changes else packet


# ------------------------------------------------------------------ packets

_Ack = PubAck | PubRec | PubRel | PubComp
_ACK_NAMES: dict[type[_Ack], str] = {PubAck: "puback", PubRec: "pubrec", PubRel: "pubrel",
                               PubComp: "pubcomp"}  # fmt: skip
_ACK_TYPES = {name: cls for cls, name in _ACK_NAMES.items()}


def _with_props(out: dict[str, Any], props: Properties, level: ProtocolLevel) -> dict[str, Any]:
    theirs = props_to_theirs(props) if level is V5 else None
    if theirs is not None:
        out["properties"] = theirs
    return out


def to_theirs(packet: Packet, level: ProtocolLevel) -> dict[str, Any]:
    """mqtt-packet's object for ``packet`` at ``level``."""
    if isinstance(packet, Connect):
        out: dict[str, Any] = {
            "cmd": "connect",
            "protocolId": packet.protocol_level.protocol_name,
            "protocolVersion": int(packet.protocol_level),
            "clean": packet.clean_session,
            "keepalive": packet.keep_alive,
            "clientId": packet.client_id,
        }
        if packet.username is not None:
            out["username"] = packet.username
        if packet.password is not None:
            out["password"] = _hex(packet.password)
        if packet.will is not None:
            will = packet.will
            out["will"] = _with_props({"topic": will.topic, "payload": _hex(will.payload),
                                       "qos": int(will.qos), "retain": will.retain},
                                      will.properties, packet.protocol_level)
        return _with_props(out, packet.properties, packet.protocol_level)
    if isinstance(packet, ConnAck):
        code_key = "reasonCode" if level is V5 else "returnCode"
        return _with_props({"cmd": "connack", "sessionPresent": packet.session_present,
                            code_key: packet.return_code}, packet.properties, level)
    if isinstance(packet, Publish):
        out = {"cmd": "publish", "topic": packet.topic, "payload": _hex(packet.payload),
               "qos": int(packet.qos), "retain": packet.retain, "dup": packet.dup}
        if packet.packet_id is not None:
            out["messageId"] = packet.packet_id
        return _with_props(out, packet.properties, level)
    if isinstance(packet, PubAck | PubRec | PubRel | PubComp):
        return _with_props({"cmd": _ACK_NAMES[type(packet)], "messageId": packet.packet_id,
                            "reasonCode": packet.reason_code}, packet.properties, level)
    if isinstance(packet, Subscribe):
        subs = [{"topic": s.topic_filter, "qos": int(s.qos), "nl": s.no_local,
                 "rap": s.retain_as_published, "rh": s.retain_handling}
                for s in packet.subscriptions]
        return _with_props({"cmd": "subscribe", "messageId": packet.packet_id,
                            "subscriptions": subs}, packet.properties, level)
    if isinstance(packet, SubAck):
        return _with_props({"cmd": "suback", "messageId": packet.packet_id,
                            "granted": list(packet.return_codes)}, packet.properties, level)
    if isinstance(packet, Unsubscribe):
        return _with_props({"cmd": "unsubscribe", "messageId": packet.packet_id,
                            "unsubscriptions": list(packet.topic_filters)},
                           packet.properties, level)
    if isinstance(packet, UnsubAck):
        return _with_props({"cmd": "unsuback", "messageId": packet.packet_id,
                            "granted": list(packet.reason_codes)}, packet.properties, level)
    if isinstance(packet, PingReq):
        return {"cmd": "pingreq"}
    if isinstance(packet, PingResp):
        return {"cmd": "pingresp"}
    if isinstance(packet, Disconnect):
        return _with_props({"cmd": "disconnect", "reasonCode": packet.reason_code},
                           packet.properties, level)
    assert isinstance(packet, Auth)
    return _with_props({"cmd": "auth", "reasonCode": packet.reason_code}, packet.properties,
                       level)


def from_theirs(obj: dict[str, Any], level: ProtocolLevel) -> Packet:
    """Our packet value for what mqtt-packet's parser produced."""
    cmd = obj["cmd"]
    props = props_from_theirs(obj.get("properties"))
    if cmd == "connect":
        will = None
        if "will" in obj:
            w = obj["will"]
            will = Will(w["topic"], _unhex(w["payload"]), QoS(w["qos"]), w["retain"],
                        props_from_theirs(w.get("properties")))
        return Connect(
            ProtocolLevel(obj["protocolVersion"]), obj["clientId"], obj["clean"],
            obj["keepalive"], will, obj.get("username"),
            _unhex(obj["password"]) if "password" in obj else None, props,
        )
    if cmd == "connack":
        code = obj["reasonCode"] if level is V5 else obj["returnCode"]
        return ConnAck(obj["sessionPresent"], code, props)
    if cmd == "publish":
        qos = QoS(obj["qos"])
        return Publish(obj["topic"], _unhex(obj["payload"]), qos, obj["retain"], obj["dup"],
                       obj["messageId"] if qos else None, props)
    if cmd in _ACK_TYPES:
        return _ACK_TYPES[cmd](obj["messageId"], obj.get("reasonCode", 0), props)
    if cmd == "subscribe":
        subs = tuple(Subscription(s["topic"], QoS(s["qos"]), s.get("nl", False),
                                  s.get("rap", False), s.get("rh", 0))
                     for s in obj["subscriptions"])
        return Subscribe(obj["messageId"], subs, props)
    if cmd == "suback":
        return SubAck(obj["messageId"], tuple(obj["granted"]), props)
    if cmd == "unsubscribe":
        return Unsubscribe(obj["messageId"], tuple(obj["unsubscriptions"]), props)
    if cmd == "unsuback":
        return UnsubAck(obj["messageId"], tuple(obj.get("granted", ())), props)
    if cmd == "pingreq":
        return PingReq()
    if cmd == "pingresp":
        return PingResp()
    if cmd == "disconnect":
        return Disconnect(obj.get("reasonCode", 0), props)
    assert cmd == "auth", cmd
    return Auth(obj["reasonCode"], props)
