"""``-D COMMAND PROPERTY VALUE``: MQTT 5.0 properties on the command line, as mosquitto
spells them (``-D publish user-property key value``, ``-D connect receive-maximum 10``).

The names are mosquitto's (the specification's, in lower case with hyphens); the
packets each may stand on come from the codec's property table, so a property
the codec would refuse on a packet is refused here, before connecting, with
mosquitto's wording. Properties the client manages itself (topic aliases,
authentication, the server's own) are refused as "not supported".
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from mqttref.impl.client.errors import InvalidArgument
from mqttref.impl.codec.packets import PacketType, Properties
from mqttref.impl.codec.properties import SPECS, WILL, Kind, PropertySpec, PropType

COMMANDS: dict[str, Kind] = {
    "connect": PacketType.CONNECT,
    "publish": PacketType.PUBLISH,
    "subscribe": PacketType.SUBSCRIBE,
    "disconnect": PacketType.DISCONNECT,
    "will": WILL,
}
"""The commands ``-D`` takes, and the packet whose properties each sets."""

_MOSQUITTO_ONLY = frozenset({"auth", "puback", "pubrec", "pubrel", "pubcomp", "unsubscribe"})
"""Commands mosquitto knows that these tools send no properties on."""

_NAMES: dict[str, PropertySpec] = {
    {"subscription_identifiers": "subscription-identifier",
     "user_properties": "user-property"}.get(spec.name, spec.name.replace("_", "-")): spec
    for spec in SPECS
}  # fmt: skip

_SUPPORTED: dict[Kind, frozenset[str]] = {
    PacketType.CONNECT: frozenset(
        {"session-expiry-interval", "receive-maximum", "maximum-packet-size",
         "topic-alias-maximum", "request-response-information",
         "request-problem-information", "user-property"}
    ),
    PacketType.PUBLISH: frozenset(
        {"payload-format-indicator", "message-expiry-interval", "content-type",
         "response-topic", "correlation-data", "user-property"}
    ),
    PacketType.SUBSCRIBE: frozenset({"subscription-identifier", "user-property"}),
    PacketType.DISCONNECT: frozenset({"session-expiry-interval", "reason-string"}),
    WILL: frozenset(
        {"payload-format-indicator", "message-expiry-interval", "content-type",
         "response-topic", "correlation-data", "user-property", "will-delay-interval"}
    ),
}  # fmt: skip

_LIMITS = {
    PropType.BYTE: 0xFF,
    PropType.U16: 0xFFFF,
    PropType.U32: 0xFFFF_FFFF,
    PropType.VARINT: 268_435_455,
}


def _integer(name: str, spec: PropertySpec, text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise InvalidArgument(f"{name} not a number: {text!r}") from None
    if not 0 <= value <= _LIMITS[spec.type] or (spec.valid is not None and not spec.valid(value)):
        raise InvalidArgument(f"Property value ({value}) out of range for property {name}.")
    return value


def parse_properties(options: Sequence[Sequence[str]]) -> dict[str, Properties]:
    """The ``-D`` options, gathered per command: ``{"publish": Properties(...), ...}``."""
    gathered: dict[str, dict[str, object]] = {}
    for option in options:
        if len(option) < 3:
            raise InvalidArgument(
                "-D argument given but not enough arguments specified (-D COMMAND PROPERTY VALUE)"
            )
        command, name, *values = option
        command = command.lower()
        kind = COMMANDS.get(command)
        if kind is None:
            if command in _MOSQUITTO_ONLY:
                raise InvalidArgument(f"-D {command} properties are not supported.")
            raise InvalidArgument(
                f"Invalid command {command!r} given in -D argument (one of {', '.join(COMMANDS)})."
            )
        spec = _NAMES.get(name)
        if spec is None:
            raise InvalidArgument(f"Invalid property name {name!r} given in -D argument.")
        if kind not in spec.allowed_on:
            raise InvalidArgument(f"{name} property not allowed for {command} in -D argument.")
        if name not in _SUPPORTED[kind]:
            raise InvalidArgument(f"{name} property not supported for {command} in -D argument.")
        fields = gathered.setdefault(command, {})
        wanted = 2 if spec.type is PropType.PAIR else 1
        if len(values) != wanted:
            raise InvalidArgument(
                f"{name} takes {'a name and a value' if wanted == 2 else 'one value'} "
                f"in -D {command} {name}"
            )
        if spec.name in fields and not spec.repeatable:
            raise InvalidArgument(f"{name} given twice for {command} in -D argument.")
        value: object
        if spec.type is PropType.PAIR:
            value = (*fields.get(spec.name, ()), (values[0], values[1]))  # type: ignore[misc]
        elif spec.type is PropType.STRING:
            value = values[0]
        elif spec.type is PropType.BINARY:
            value = values[0].encode("utf-8")
        elif spec.repeatable:
            value = (_integer(name, spec, values[0]),)
        else:
            value = _integer(name, spec, values[0])
        fields[spec.name] = value
    return {
        command: attrs.evolve(Properties(), **fields)  # type: ignore[arg-type]
        for command, fields in gathered.items()
    }
