"""Token minting for app backends: a JWT with the claims the broker reads.

    {"starling": {"publish": [...], "subscribe": [...], "cancel": [...]}, "exp": ..., "sub": ...}

Channel entries are exact names or `prefix*` patterns. HS256 needs only PyJWT; RS256 and
ES256 take a PEM private key and need the `cryptography` package (`pip install
starling-client[crypto]`). The broker verifies with `--jwt-secret` or `--jwt-public-key`.
"""
from __future__ import annotations

import time
from typing import Iterable, Optional, Union

import jwt


def mint_token(
    key: Union[str, bytes],
    *,
    publish: Iterable[str] = (),
    subscribe: Iterable[str] = (),
    cancel: Iterable[str] = (),
    ttl: Optional[float] = 3600,
    subject: Optional[str] = None,
    algorithm: str = "HS256",
    not_before: Optional[float] = None,
    now: Optional[float] = None,
) -> str:
    """A signed token allowing `publish`, `subscribe` and `cancel` (Stop; `publish` allows
    it too) on the given channels.

    `ttl` seconds from `now` give `exp` (None: a token that never expires). The broker
    allows 5 seconds of clock skew on `exp` and `nbf`.
    """
    now = time.time() if now is None else now
    claims: dict = {"starling": {"publish": list(publish), "subscribe": list(subscribe)}}
    if cancel:
        claims["starling"]["cancel"] = list(cancel)
    if ttl is not None:
        claims["exp"] = int(now + ttl)
    if not_before is not None:
        claims["nbf"] = int(not_before)
    if subject is not None:
        claims["sub"] = subject
    return jwt.encode(claims, key, algorithm=algorithm)
