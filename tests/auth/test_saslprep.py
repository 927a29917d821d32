"""SASLprep (RFC 4013) and the saslname escaping of RFC 5802 section 5.1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.auth.credentials import (
    escape_user_name,
    saslprep,
    unescape_user_name,
)
from mqttref.impl.auth.errors import AuthError


@pytest.mark.parametrize(
    ("given_", "prepared"),
    [  # RFC 4013 section 3, "Examples"
        ("I\u00adX", "IX"),  # SOFT HYPHEN mapped to nothing
        ("user", "user"),
        ("USER", "USER"),  # case is preserved
        ("\u00aa", "a"),  # FEMININE ORDINAL INDICATOR, NFKC
        ("\u2168", "IX"),  # ROMAN NUMERAL NINE, NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space mapped to SPACE
    ],
)
def test_saslprep_maps_and_normalises_as_rfc_4013_shows(given_: str, prepared: str) -> None:
    assert saslprep(given_) == prepared


@pytest.mark.parametrize(
    "given_",
    [
        "\u0007",  # RFC 4013 section 3: a control character
        "\u0627\u0031",  # RFC 4013 section 3: RandALCat not at both ends
        "a\u0627b",  # right-to-left mixed with left-to-right
        "\ue000",  # private use
        "\ufffe",  # non-character
        "a\u200eb",  # LEFT-TO-RIGHT MARK: changes display
        "\U000e0001",  # language tag
    ],
)
def test_saslprep_refuses_prohibited_strings(given_: str) -> None:
    with pytest.raises(AuthError, match="SASLprep"):
        saslprep(given_)


def test_unassigned_code_points_are_refused_in_stored_strings_only() -> None:
    unassigned = "\u0221"  # unassigned in Unicode 3.2
    with pytest.raises(AuthError, match="unassigned"):
        saslprep(unassigned)
    assert saslprep(unassigned, allow_unassigned=True) == unassigned


@given(st.text(max_size=20))
def test_escaping_a_user_name_round_trips_and_leaves_no_comma(name: str) -> None:
    escaped = escape_user_name(name)
    assert "," not in escaped
    assert unescape_user_name(escaped) == name


@pytest.mark.parametrize("saslname", ["a=", "a=2", "=41", "a=2c"])
def test_an_equals_sign_not_followed_by_2C_or_3D_is_an_encoding_error(saslname: str) -> None:
    with pytest.raises(AuthError, match="2C or 3D"):
        unescape_user_name(saslname)
