"""A digest client written from RFC 2617, for the auth tests."""

from __future__ import annotations

import hashlib

from appliance.telephony.digest import parse_digest

URI = "sip:tel3sis@127.0.0.1"
"""The Request-URI the answers below are computed for, unless told otherwise."""


def digest_answer(
    challenge: str,
    *,
    user: str,
    password: str,
    method: str = "INVITE",
    uri: str = URI,
    nc: str = "00000001",
    cnonce: str = "0a4f113b",
    algorithm: str = "MD5",
) -> str:
    """What a UA sends back (RFC 2617 section 3.2.2, qop=auth)."""
    params = parse_digest(challenge)
    assert params is not None
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]
    ha1 = h(f"{user}:{params['realm']}:{password}".encode()).hexdigest()
    ha2 = h(f"{method}:{uri}".encode()).hexdigest()
    nonce = params["nonce"]
    response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )
