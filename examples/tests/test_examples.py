"""Each example, run with its one command against the real broker on both engines: the
worker streams a reply, the backend mints tokens and starts a worker, and the page
streams the answer in headless Chromium through token refreshes."""
import os
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from conftest import ROOT
from headless import Browser
from starling_client import Client, Notice, Refused, mint_token
from support import collect

import worker

SECRET = "example-secret-0123456789abcdef-0123"
EXPECTED = lambda prompt: "".join(worker.model(prompt))  # noqa: E731


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_backend(broker_url, **env):
    port = free_port()
    e = dict(os.environ, BROKER_URL=broker_url, PORT=str(port), **env)
    p = subprocess.Popen([sys.executable, str(ROOT / "examples" / "backend" / "app.py")], env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            httpx.get(url + "/", timeout=1)
            return p, url
        except httpx.TransportError:
            if p.poll() is not None:
                raise RuntimeError(f"the backend exited: {p.stderr.read()}")
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("the backend did not start")


def test_worker_command_streams_a_reply(start_broker):
    b = start_broker()
    ch = f"chat-{uuid.uuid4().hex[:12]}"
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "worker" / "worker.py"), "--broker", b.url,
                          "--channel", ch, "What is Starling?"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with Client(b.url) as c:
        events = collect(c.subscribe(ch, last_event_id="earliest"))
    text = "".join(e.data for e in events if e.event == "token")
    assert text == EXPECTED("What is Starling?")
    assert events[-1].event == "final" and events[-1].json() == {"text": text}
    assert any(e.event == "progress" for e in events)


def test_worker_stops_when_the_broker_refuses(start_broker):
    b = start_broker()
    ch = f"chat-{uuid.uuid4().hex[:12]}"
    with Client(b.url) as c:
        c.publish(ch, "already over", final=True)
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "worker" / "worker.py"), "--broker", b.url,
                          "--channel", ch, "too late"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "stopped: channel_final" in out.stderr


def test_backend_mints_a_token_and_starts_a_worker(start_broker):
    b = start_broker("--jwt-secret", SECRET)
    backend, url = run_backend(b.url, JWT_SECRET=SECRET)
    try:
        chat = httpx.post(url + "/api/chat", json={"prompt": "hi"}).json()
        assert chat["broker"] == b.url and chat["channel"].startswith("chat-")
        with Client(b.url, token=chat["token"]) as c:
            events = collect(c.subscribe(chat["channel"], last_event_id="earliest"))
            assert "".join(e.data for e in events if e.event == "token") == EXPECTED("hi")
            with pytest.raises(Refused) as refused:  # the token is for this chat only
                c.channel("chat-someone-else")
            assert refused.value.status == 403
        fresh = httpx.get(url + "/api/token", params={"channel": chat["channel"]}).json()["token"]
        with Client(b.url, token=fresh) as c:
            assert c.channel(chat["channel"])["final"] is True
    finally:
        backend.terminate()
        backend.wait(10)


def test_page_streams_the_answer_in_headless_chromium_through_token_refreshes(start_broker):
    backend_port = free_port()
    b = start_broker("--jwt-secret", SECRET, "--cors-origin", f"http://127.0.0.1:{backend_port}")
    # Tokens that live about a second (the broker allows 5 s of skew) and a slow worker:
    # the page's stream outlives several tokens and must refresh each time.
    env = dict(os.environ, BROKER_URL=b.url, PORT=str(backend_port), JWT_SECRET=SECRET,
               TOKEN_TTL="-4", TOKEN_DELAY="0.15")
    backend = subprocess.Popen([sys.executable, str(ROOT / "examples" / "backend" / "app.py")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{backend_port}"
    browser = None
    try:
        for _ in range(150):
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        browser = Browser()
        tab = browser.open(url + "/?prompt=Hello%20from%20Chromium")
        status = lambda: browser.evaluate(tab, 'document.getElementById("status").textContent')  # noqa: E731
        browser.wait_for(tab, 'document.getElementById("status")?.textContent === "done"', timeout=30)
        answer = browser.evaluate(tab, 'document.getElementById("answer").textContent')
        assert answer == EXPECTED("Hello from Chromium"), status()
        assert any("starling.expired" in line for line in browser.console), browser.console
    finally:
        if browser:
            browser.close()
        backend.terminate()
        backend.wait(10)


def test_page_stop_button_ends_the_generation_in_headless_chromium(start_broker):
    backend_port = free_port()
    b = start_broker("--jwt-secret", SECRET, "--cors-origin", f"http://127.0.0.1:{backend_port}")
    env = dict(os.environ, BROKER_URL=b.url, PORT=str(backend_port), JWT_SECRET=SECRET, TOKEN_DELAY="0.2")
    backend = subprocess.Popen([sys.executable, str(ROOT / "examples" / "backend" / "app.py")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{backend_port}"
    browser = None
    try:
        for _ in range(150):
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        browser = Browser()
        tab = browser.open(url + "/?prompt=Stop%20me")
        browser.wait_for(tab, 'document.getElementById("answer")?.textContent.length > 10', timeout=20)
        browser.evaluate(tab, 'document.getElementById("stop").click()')
        browser.wait_for(tab, 'document.getElementById("status")?.textContent === "stopped"', timeout=10)
        answer = browser.evaluate(tab, 'document.getElementById("answer").textContent')
        full = EXPECTED("Stop me")
        assert full.startswith(answer) and len(answer) < len(full), answer
        channel = browser.evaluate(tab, 'performance.getEntriesByType("resource").map(e => e.name)'
                                        '.find(n => n.includes("/v1/channels/")).split("/v1/channels/")[1].split("/")[0]')
        with Client(b.url, token=mint_token(SECRET, subscribe=[channel])) as c:
            assert c.channel(channel)["state"] == "cancelled"
    finally:
        if browser:
            browser.close()
        backend.terminate()
        backend.wait(10)
