"""A receiver's whole flow against a running pulsehooks (make run).

It plays both sides with the standard library only:
  1. starts a receiver (handler.py) that also serves job results,
  2. registers it as an endpoint for job.* events and reads its signing secret,
  3. "submits a job": publishes job.created, job.processing and job.completed to
     ingest's HTTP API as Pulse's job processor would, with a result_url that
     points at the result this script serves,
  4. receives and verifies the three webhooks, and on job.completed fetches
     the result from result_url, then removes the endpoint.

    export KEY=<demo API key> INGEST_TOKEN=<ingest token pho_...>
    python3 examples/python/complete_integration.py

Environment: KEY, INGEST_TOKEN (both printed by make run), TENANT_ID (demo),
PULSEHOOKS_API_URL (http://127.0.0.1:8080), PULSEHOOKS_INGEST_URL
(http://127.0.0.1:8081), PORT (0: any free port).
"""

import datetime
import json
import os
import sys
import threading
import time
import urllib.request
import uuid
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from handler import Receiver, make_handler  # noqa: E402


def call(method, url, headers, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    api = os.environ.get("PULSEHOOKS_API_URL", "http://127.0.0.1:8080")
    ingest = os.environ.get("PULSEHOOKS_INGEST_URL", "http://127.0.0.1:8081")
    key = os.environ.get("KEY") or sys.exit("set KEY to the tenant's API key (make run prints it)")
    token = os.environ.get("INGEST_TOKEN") or sys.exit("set INGEST_TOKEN to the ingest token pho_... (make run prints it)")
    tenant = os.environ.get("TENANT_ID", "demo")

    job_id = "job_" + uuid.uuid4().hex[:12]
    routes = {}
    done = threading.Event()
    results = {}

    def process(msg_id, event):
        data = event["data"]
        print(f"verified {event['type']} {msg_id} {data['job_id']} {data['status']}", flush=True)
        if event["type"] == "job.completed" and data["job_id"] == job_id:
            # Fetch the result the webhook points at.
            with urllib.request.urlopen(data["result_url"], timeout=10) as resp:
                results[job_id] = json.loads(resp.read())
            done.set()

    receiver = Receiver(None, process)
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), make_handler(receiver, routes))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"receiver listening on {base}/webhook", flush=True)

    tenant_headers = {"x-api-key": key}
    endpoint = call("POST", f"{api}/v1/endpoints", tenant_headers, {
        "url": f"{base}/webhook",
        "event_types": ["job.created", "job.processing", "job.completed"],
        "description": "complete_integration.py",
    })
    try:
        secret = call("GET", f"{api}/v1/endpoints/{endpoint['id']}/secret", tenant_headers)["key"]
        receiver.set_secret(secret)
        print(f"endpoint {endpoint['id']} registered", flush=True)

        # The job's result, served where result_url points.
        result_path = f"/results/{job_id}"
        routes[result_path] = json.dumps({"job_id": job_id, "pages": [{"page": 1, "text": "Invoice 2024-0423"}]}).encode()

        processor = {"authorization": f"Bearer {token}"}
        events = [
            ("job.created", {"job_id": job_id, "status": "queued", "document_name": "invoice.pdf", "created_at": now()}),
            ("job.processing", {"job_id": job_id, "status": "processing", "started_at": now()}),
            ("job.completed", {"job_id": job_id, "status": "completed", "completed_at": now(), "page_count": 1,
                               "result_url": base + result_path}),
        ]
        print(f"submitted {job_id}", flush=True)
        for event_type, data in events:
            accepted = call("POST", f"{ingest}/v1/events", processor, {
                "tenant_id": tenant, "event_type": event_type, "data": data,
                "idempotency_key": f"{job_id}-{event_type}",
            })
            print(f"published {event_type} {accepted['message_id']}", flush=True)
            time.sleep(0.05)  # deliveries of one endpoint may arrive in any order

        if not done.wait(30):
            sys.exit(f"no job.completed webhook for {job_id} within 30 s")
        print(f"result of {job_id}: {json.dumps(results[job_id])}", flush=True)
    finally:
        call("DELETE", f"{api}/v1/endpoints/{endpoint['id']}", tenant_headers)
        server.shutdown()


if __name__ == "__main__":
    main()
