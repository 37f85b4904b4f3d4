"""Fixtures over support.py: the broker on each engine, a channel name, cutting proxies."""
from __future__ import annotations

import uuid
from typing import List, Optional

import pytest

from support import Broker, CuttingProxy, engine_args


@pytest.fixture(params=["memory", "redis"])
def engine(request) -> str:
    return request.param


@pytest.fixture
def start_broker(engine):
    """start_broker(*flags) -> a running Broker on the test's engine; stopped afterwards."""
    started: List[Broker] = []

    def start(*args: str) -> Broker:
        b = Broker(*engine_args(engine), *args)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def broker(start_broker) -> Broker:
    return start_broker()


@pytest.fixture
def channel() -> str:
    return f"py-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def proxy_to():
    made: List[CuttingProxy] = []

    def make(broker: Broker, rules: Optional[dict] = None) -> CuttingProxy:
        p = CuttingProxy(broker.port, rules)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
