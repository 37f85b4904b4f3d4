"""Test support shared by clients/python/tests and examples/tests: the real broker binary
on a free port, a TCP proxy that cuts connections on purpose, and a subscription reader.
Nothing here is a stand-in for the broker.

The binary is $STARLING_BIN (ops/scripts/test-clients.sh sets it), else the debug build
of this checkout. The Redis engine needs $STARLING_TEST_REDIS (ops/scripts/test.sh starts
a private Redis and sets it), the cluster tests $STARLING_TEST_REDIS_CLUSTER (a private
Redis Cluster, likewise); without them those tests fail rather than skip.
"""
from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
from typing import List, Optional

ROOT = pathlib.Path(__file__).resolve().parents[3]
BINARY = os.environ.get("STARLING_BIN") or str(ROOT / ".build" / "debug" / "starling")


class Broker:
    """`starling serve --listen 127.0.0.1:0 <args>`, its port read from its stdout."""

    def __init__(self, *args: str) -> None:
        if not os.path.exists(BINARY):
            raise RuntimeError(f"no broker binary at {BINARY}: build it (swift build) or set STARLING_BIN")
        logs = None if os.environ.get("STARLING_TEST_LOGS") else subprocess.DEVNULL
        # STARLING_* variables are the broker's settings: the suite's own (STARLING_BIN,
        # STARLING_TEST_REDIS, ...) would be unknown settings to it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STARLING_")}
        self.process = subprocess.Popen([BINARY, "serve", "--listen", "127.0.0.1:0", *args],
                                        stdout=subprocess.PIPE, stderr=logs, text=True, env=env)
        self.port = self._read_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _read_port(self) -> int:
        deadline = time.time() + 10
        seen = []
        while time.time() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line)
            for word in line.split():
                if "listening on" in line and word.startswith("http://"):
                    return int(word.rsplit(":", 1)[1].rstrip("/"))
        self.stop()
        raise RuntimeError(f"starling did not report its port: {''.join(seen)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def redis_url() -> str:
    url = os.environ.get("STARLING_TEST_REDIS")
    if not url:
        raise RuntimeError("STARLING_TEST_REDIS is not set: run ops/scripts/test.sh (make test), which starts a private Redis")
    return url


def redis_cluster_seeds() -> str:
    """The test Redis Cluster's masters, `redis://127.0.0.1:P,...` (ops/scripts/test.sh starts
    it with ops/redis/cluster/cluster.sh); without it the cluster tests fail, never skip."""
    seeds = os.environ.get("STARLING_TEST_REDIS_CLUSTER")
    if not seeds:
        raise RuntimeError("STARLING_TEST_REDIS_CLUSTER is not set: run ops/scripts/test.sh (make test), "
                           "which starts a private Redis Cluster")
    return seeds


def engine_args(engine: str) -> List[str]:
    return ["--redis", redis_url()] if engine == "redis" else []


class CuttingProxy:
    """A loopback TCP proxy in front of the broker that breaks chosen connections.

    Per accepted connection (numbered from 0), a rule may say:
    - `cut_up=N`: close both sides once N bytes went client -> broker;
    - `cut_down=N`: close both sides once N bytes went broker -> client;
    - `cut_down_at=b"MARK"`: close both sides just before MARK in the answer;
    - `drop_answer=True`: forward the request, then close the client side without
      forwarding a byte of the answer (the broker has stored; the client never hears);
    - `drop_answer_after=b"MARK"`: the same, for the first answer after the client sent
      MARK (earlier answers, e.g. to a handshake, pass).
    Connections without a rule are forwarded untouched. `traffic[k]` is what went through
    connection k, both ways (unless a drop rule holds it to the client's side).
    """

    def __init__(self, port: int, rules: Optional[dict] = None) -> None:
        self.target = port
        self.rules = rules or {}
        self.connections = 0
        self.traffic: List[bytearray] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            rule = self.rules.get(self.connections, {})
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            sent = bytearray()  # what the client sent on this connection
            self.traffic.append(sent)
            mark = b"" if rule.get("drop_answer") else rule.get("drop_answer_after")
            threading.Thread(target=self._pipe, args=(client, upstream, rule.get("cut_up"), None, sent), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, rule.get("cut_down"), mark, sent, rule.get("cut_down_at")),
                             daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, cut: Optional[int], drop_after: Optional[bytes],
              sent: bytearray, cut_at: Optional[bytes] = None) -> None:
        moved = 0
        seen = bytearray()  # what went this way, while looking for cut_at
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if cut_at is not None:
                    seen.extend(data)
                    at = seen.find(cut_at)
                    if at >= 0:
                        cut = min(cut, at) if cut is not None else at
                if drop_after is None:
                    sent.extend(data)
                elif drop_after in sent:
                    break  # the answer came: the client never gets it
                if cut is not None and moved + len(data) >= cut:
                    dst.sendall(data[: max(0, cut - moved)])
                    break
                dst.sendall(data)
                moved += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def collect(sub, until=lambda events: False, timeout: float = 10.0):
    """Events of a subscription until it ends, `until(events)` holds, or the timeout
    (the timeout fails the test)."""
    out = []
    result = {}

    def run():
        try:
            for e in sub:
                out.append(e)
                if until(out):
                    break
        except Exception as e:  # noqa: BLE001 - reported to the test
            result["error"] = e
        result["done"] = True

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if not result.get("done"):
        sub.close()
        raise AssertionError(f"subscription did not finish within {timeout}s; got {[(e.event, e.data) for e in out]}")
    if "error" in result:
        raise result["error"]
    return out
