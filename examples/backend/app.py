#!/usr/bin/env python3
"""An app backend (FastAPI): takes a chat request, names a channel, mints a subscribe token
for the page, starts a worker, and serves the page.

    BROKER_URL=http://127.0.0.1:8080 JWT_SECRET=<32+ bytes> python examples/backend/app.py

The broker runs with the same secret and lets the page's origin in:
    starling serve --jwt-secret <32+ bytes> --cors-origin http://127.0.0.1:8000
Without JWT_SECRET (an open broker) no tokens are minted.

Routes: GET / (the page), POST /api/chat {"prompt"} -> {"channel","broker","token"},
GET /api/token?channel=… -> {"token"} (the page's getToken(): a fresh short-lived token),
POST /api/stop?channel=… -> Stop (the broker ends the channel; the worker stops at once).
"""
import os
import pathlib
import sys
import threading
import uuid

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "worker"))
import worker  # noqa: E402  (examples/worker/worker.py)

from starling_client import Cancelled, Client, Refused, mint_token  # noqa: E402

BROKER = os.environ.get("BROKER_URL", "http://127.0.0.1:8080")
SECRET = os.environ.get("JWT_SECRET")
TOKEN_TTL = int(os.environ.get("TOKEN_TTL", "300"))
PAGE = pathlib.Path(__file__).resolve().parents[1] / "page" / "index.html"

app = FastAPI(title="Starling example backend")


class Chat(BaseModel):
    prompt: str


def subscribe_token(channel):
    return mint_token(SECRET, subscribe=[channel], ttl=TOKEN_TTL) if SECRET else None


@app.get("/", response_class=HTMLResponse)
def page():
    return PAGE.read_text(encoding="utf-8")


@app.post("/api/chat")
def chat(body: Chat):
    channel = f"chat-{uuid.uuid4().hex[:12]}"
    publish = mint_token(SECRET, publish=[channel], ttl=600, subject="example-worker") if SECRET else None
    threading.Thread(target=run_worker, args=(channel, body.prompt, publish), daemon=True).start()
    return {"channel": channel, "broker": BROKER, "token": subscribe_token(channel)}


def run_worker(channel, prompt, token):
    try:
        worker.run(BROKER, channel, prompt, token)
    except Cancelled:
        pass  # Stop: the generation ends here


@app.post("/api/stop")
def stop(channel: str):
    if not channel.startswith("chat-"):
        raise HTTPException(403, "not a chat channel")
    # A real backend checks here that the signed-in user owns this chat.
    token = mint_token(SECRET, cancel=[channel], ttl=60) if SECRET else None
    with Client(BROKER, token=token) as client:
        try:
            return client.cancel(channel, reason="stopped from the page")
        except Refused as e:  # already complete: nothing to stop
            raise HTTPException(409, e.message)


@app.get("/api/token")
def token(channel: str):
    if not channel.startswith("chat-"):
        raise HTTPException(403, "not a chat channel")
    # A real backend checks here that the signed-in user owns this chat.
    return {"token": subscribe_token(channel)}


if __name__ == "__main__":
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")), log_level="warning")
