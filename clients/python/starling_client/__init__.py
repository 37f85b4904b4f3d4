"""starling_client: the Python client for the Starling SSE broker (docs/clients.md).

    from starling_client import Client, mint_token
    client = Client("http://127.0.0.1:8080", token=mint_token(secret, publish=["chat-*"]))
    with client.stream("chat-42") as g:
        g.token("Hel"); g.token("lo"); g.final({"done": True})
    for e in client.subscribe("chat-42", last_event_id="earliest"):
        print(e.event, e.data)
"""
from .aio import AsyncClient, AsyncGeneration, AsyncSubscription
from .client import Client, TokenSource
from .errors import Cancelled, Refused, StarlingError, Unavailable
from .events import (Abandoned, CancelledNotice, ChannelResult, Event, Expired, Gap, Notice, PublishResult,
                     Received)
from .generation import Generation
from .retry import Backoff
from .subscription import Subscription
from .tokens import mint_token


def __getattr__(name):
    # redis-py is optional (`pip install starling-client[redis]`): imported on first use.
    if name in ("RedisPublisher", "RedisGeneration"):
        from . import redis_publisher
        return getattr(redis_publisher, name)
    raise AttributeError(name)


__version__ = "0.1.0"
__all__ = [
    "AsyncClient", "AsyncGeneration", "AsyncSubscription", "Abandoned", "Backoff", "Cancelled", "CancelledNotice", "ChannelResult", "Client", "Event", "Expired", "Gap",
    "Generation", "Notice", "PublishResult", "Received", "RedisGeneration", "RedisPublisher", "Refused",
    "StarlingError", "Subscription", "TokenSource", "Unavailable", "mint_token",
]
