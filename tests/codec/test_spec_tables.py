"""The tests' transcription of the spec tables agrees with the implementation's.

The property table (Table 2-4) and the reason codes per packet are written
twice on purpose, in ``tests/strategies.py`` and in ``mqttref.impl``: a typo
in either shows up here instead of silently shaping both the codec and the
packets generated to test it.
"""

from __future__ import annotations

import pytest

from mqttref.impl.codec.packets import PacketType
from mqttref.impl.codec.properties import SPECS, WILL
from mqttref.impl.codec.reasons import VALID_REASONS
from tests import strategies as s

IMPL_TYPES = {"byte": "BYTE", "u16": "U16", "u32": "U32", "varint": "VARINT",
              "string": "STRING", "binary": "BINARY", "pair": "PAIR"}  # fmt: skip


def _kind_names(kinds: frozenset[object]) -> frozenset[str]:
    return frozenset(k if k == WILL else k.name for k in kinds)  # type: ignore[attr-defined]


def test_both_property_tables_list_the_same_properties() -> None:
    assert {spec.name for spec in SPECS} == set(s.PROPERTY_TABLE)


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_each_property_has_the_same_identifier_type_and_packets(spec: object) -> None:
    ident, kind, allowed = s.PROPERTY_TABLE[spec.name]  # type: ignore[attr-defined]
    assert spec.ident == ident  # type: ignore[attr-defined]
    assert spec.type.name == IMPL_TYPES[kind]  # type: ignore[attr-defined]
    assert _kind_names(spec.allowed_on) == allowed  # type: ignore[attr-defined]
    assert spec.repeatable == (spec.name in {  # type: ignore[attr-defined]
        "user_properties", "subscription_identifiers"})


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_each_property_refuses_exactly_the_values_the_spec_forbids(spec: object) -> None:
    name = spec.name  # type: ignore[attr-defined]
    valid = spec.valid or (lambda value: True)  # type: ignore[attr-defined]
    if name in s.BOOLEAN_PROPERTIES:
        assert [v for v in range(256) if valid(v)] == [0, 1]
    elif name in s.NONZERO_PROPERTIES or name == "subscription_identifiers":
        assert not valid(0)
        assert valid(1)
    elif s.PROPERTY_TABLE[name][1] in ("u16", "u32", "byte"):
        assert valid(0)


def test_both_tables_of_reason_codes_agree() -> None:
    assert {t.name: set(codes) for t, codes in VALID_REASONS.items()} == {
        name: set(codes) for name, codes in s.REASON_CODES.items()
    }


def test_every_packet_type_with_a_reason_code_at_5_is_listed() -> None:
    with_reason = {PacketType.CONNACK, PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL,
                   PacketType.PUBCOMP, PacketType.SUBACK, PacketType.UNSUBACK,
                   PacketType.DISCONNECT, PacketType.AUTH}  # fmt: skip
    assert set(VALID_REASONS) == with_reason
