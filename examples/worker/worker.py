#!/usr/bin/env python3
"""A worker: streams a model's answer into a Starling channel with the Python client.

    python examples/worker/worker.py --broker http://127.0.0.1:8080 --channel chat-1 "Tell me a story"

The "model" is a stand-in that answers word by word, so the example runs anywhere; swap
`model()` for a real one. One streaming request carries the whole generation: tokens,
a progress snapshot every few tokens, then the final event with the whole text, under a
lease so that a worker that dies leaves `starling.abandoned` rather than a page waiting
forever. When someone presses Stop (POST /v1/channels/{ch}/cancel), the broker answers
the open request at once and the next token raises `Cancelled`: the worker stops
generating. Any other refusal (the channel ended elsewhere, the token expired) stops it
too, and it says why.
"""
import argparse
import os
import sys
import time

from starling_client import Cancelled, Client, Refused


def model(prompt):
    """Stand-in for a language model: yields the answer a token at a time."""
    answer = f"You asked: “{prompt}”. Here is a streamed answer, one token at a time — ✓ done."
    for word in answer.split(" "):
        yield word + " "


def run(broker, channel, prompt, token=None, delay=float(os.environ.get("TOKEN_DELAY", "0.01"))):
    """Streams one generation; returns the broker's answer {count, first, last}."""
    client = Client(broker, token=token)
    try:
        with client.stream(channel, lease=30) as g:
            text = ""
            for k, piece in enumerate(model(prompt), 1):
                g.token(piece)
                text += piece
                if k % 5 == 0:
                    g.progress({"tokens": k})
                time.sleep(delay)
            return g.final({"text": text})
    finally:
        client.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", default=os.environ.get("BROKER_URL", "http://127.0.0.1:8080"))
    p.add_argument("--channel", required=True)
    p.add_argument("--token", default=os.environ.get("WORKER_TOKEN"), help="a JWT with publish on the channel")
    p.add_argument("prompt")
    a = p.parse_args()
    try:
        r = run(a.broker, a.channel, a.prompt, a.token)
    except Cancelled as e:
        print(f"stopped by Stop: {e.message}", file=sys.stderr)
        return 0
    except Refused as e:
        print(f"stopped: {e.code}: {e.message}", file=sys.stderr)
        return 1
    print(f"published {r.count} events to {a.channel} ({r.first} … {r.last})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
