"""A pulsehooks webhook receiver with the Python standard library only.

It verifies each delivery's Standard Webhooks signature (HMAC-SHA256 over
"<webhook-id>.<webhook-timestamp>.<body>" with the base64 key after "whsec_"),
refuses timestamps more than 5 minutes away, answers 204 at once, ignores a
webhook-id it has already seen, and processes events on a worker thread.

    WEBHOOK_SECRET=whsec_... PORT=8000 python3 handler.py

It prints "verified <type> <webhook-id>" for each new event.
"""

import base64
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60
MAX_BODY = 1 << 20


class InvalidSignature(Exception):
    """The delivery is not signed with the secret, or is too old or new."""


def parse_secret(secret):
    """Returns the key bytes of a "whsec_<base64>" secret."""
    if not secret.startswith("whsec_"):
        raise ValueError("the secret must start with whsec_")
    return base64.b64decode(secret[len("whsec_"):])


def verify(key, headers, body, now=None):
    """Checks the webhook-signature header of a delivery; raises InvalidSignature."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(timestamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not a number") from None
    now = time.time() if now is None else now
    if abs(now - ts) > TOLERANCE_SECONDS:
        raise InvalidSignature("webhook-timestamp is more than 5 minutes from now")
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # The header holds space-separated "v1,<base64>" signatures (several while
    # a secret is rotated); one match is enough.
    for sig in signatures.split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise InvalidSignature("no signature matches")


class Receiver:
    """Verifies, deduplicates and queues deliveries; a worker thread processes them."""

    def __init__(self, secret, process):
        self.key = parse_secret(secret) if secret else None
        self.process = process
        self.queue = queue.Queue()
        self.seen = {}  # webhook-id -> time first seen; a real receiver keeps it in its database
        self.lock = threading.Lock()
        threading.Thread(target=self._work, daemon=True).start()

    def set_secret(self, secret):
        self.key = parse_secret(secret)

    def first_time(self, msg_id):
        now = time.time()
        with self.lock:
            for k in [k for k, at in self.seen.items() if now - at > 3600]:
                del self.seen[k]
            if msg_id in self.seen:
                return False
            self.seen[msg_id] = now
            return True

    def handle(self, headers, body):
        """Returns the HTTP status to answer a delivery with."""
        if self.key is None:
            return 503
        try:
            verify(self.key, headers, body)  # the raw bytes, before parsing
        except InvalidSignature:
            return 401
        try:
            event = json.loads(body)
        except ValueError:
            return 400
        if self.first_time(headers.get("webhook-id")):
            self.queue.put((headers.get("webhook-id"), event))
        return 204

    def _work(self):
        while True:
            msg_id, event = self.queue.get()
            try:
                self.process(msg_id, event)
            except Exception as e:  # keep the worker alive
                print(f"processing {msg_id} failed: {e}", file=sys.stderr, flush=True)


def make_handler(receiver, routes=None):
    """Returns a request handler class: POST /webhook, and GET routes (path -> bytes)."""
    routes = routes if routes is not None else {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            if self.path != "/webhook":
                self.send_error(404)
                return
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            status = receiver.handle(self.headers, self.rfile.read(length))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self):
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass  # quiet

    return Handler


def print_event(msg_id, event):
    print(f"verified {event.get('type')} {msg_id} {json.dumps(event.get('data'))}", flush=True)


def main():
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret:
        sys.exit("set WEBHOOK_SECRET to the endpoint's signing secret (whsec_...)")
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(Receiver(secret, print_event)))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/webhook", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
