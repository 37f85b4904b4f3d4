"""The examples run as a user runs them (one command each) against the real broker; the
broker and proxy helpers are the Python client's test support."""
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python" / "tests"))
sys.path.insert(0, str(ROOT / "examples" / "worker"))

from support import Broker, engine_args  # noqa: E402


@pytest.fixture(params=["memory", "redis"])
def engine(request):
    return request.param


@pytest.fixture
def start_broker(engine):
    started = []

    def start(*args):
        b = Broker(*engine_args(engine), *args)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()
