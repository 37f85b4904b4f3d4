"""Tokens minted with PyJWT, checked by the real broker started with --jwt-secret."""
import pytest

from support import collect
from starling_client import Client, Refused, mint_token

SECRET = "s3cret-for-tests-0123456789abcdef"


def test_minted_token_is_accepted_and_its_claims_enforced(start_broker, channel):
    b = start_broker("--jwt-secret", SECRET)
    token = mint_token(SECRET, publish=[channel], subscribe=[channel[:8] + "*"], ttl=60, subject="test-backend")
    with Client(b.url, token=token) as c:
        assert c.publish(channel, "hello", final=True).count == 1
        assert [e.data for e in collect(c.subscribe(channel, last_event_id="earliest"))] == ["hello"]
        with pytest.raises(Refused) as refused:
            c.publish("other-" + channel, "no")
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
    with Client(b.url) as anonymous, pytest.raises(Refused) as refused:
        anonymous.publish(channel + "x", "no")
    assert refused.value.status == 401
    with Client(b.url, token=mint_token("another-secret-0123456789abcdef-xyz", publish=[channel])) as forged, pytest.raises(Refused) as refused:
        forged.publish(channel + "y", "no")
    assert refused.value.status == 401


def test_token_callable_is_asked_for_every_request(start_broker, channel):
    b = start_broker("--jwt-secret", SECRET)
    asked = []

    def token():
        asked.append(1)
        return mint_token(SECRET, publish=[channel], ttl=30)

    with Client(b.url, token=token) as c:
        c.publish(channel, "1")
        c.publish(channel, "2")
    assert len(asked) == 2
