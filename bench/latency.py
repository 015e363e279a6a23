#!/usr/bin/env python3
"""Submission-to-start latency: one external worker long-polls
POST /v1/queues/{queue}/claim (wait_ms 1000, re-parked at once, one job at a time) while
another thread submits one job every few milliseconds; the latency is
from just before the submit is sent to the moment the worker holds the
claimed job.  usage: latency.py BASE_URL TOKEN [samples]"""
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

base, token = sys.argv[1], sys.argv[2]
samples = int(sys.argv[3]) if len(sys.argv) > 3 else 500
host = urllib.parse.urlsplit(base)
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
sent = {}
got = {}
done = threading.Event()


def connect():
    return http.client.HTTPConnection(host.hostname, host.port, timeout=60)


def worker():
    conn = connect()
    while not done.is_set():
        conn.request("POST", "/v1/queues/latency/claim", body=json.dumps(
            {"worker_id": "latency", "max_jobs": 1, "lease_ms": 60000, "wait_ms": 1000}),
            headers=headers)
        jobs = json.loads(conn.getresponse().read())["jobs"]
        now = time.perf_counter()
        for job in jobs:
            got[job["payload"]["n"]] = now
            conn.request("POST", f"/v1/jobs/{job['id']}/complete",
                         body=json.dumps({"lease_token": job["lease_token"]}), headers=headers)
            conn.getresponse().read()


# Short polls, re-parked at once, so that the worker stops cleanly at the
# end instead of leaving a parked claim behind that would lease a job of the
# next run to a client that is gone.
poller = threading.Thread(target=worker, daemon=True)
poller.start()
time.sleep(0.5)
conn = connect()
for n in range(samples):
    sent[n] = time.perf_counter()
    conn.request("POST", "/v1/jobs", body=json.dumps(
        {"type": "latency", "queue": "latency", "payload": {"n": n}}), headers=headers)
    conn.getresponse().read()
    deadline = time.perf_counter() + 5
    while n not in got and time.perf_counter() < deadline:
        time.sleep(0.0002)
    time.sleep(0.005)
done.set()
poller.join(5)
lat = sorted((got[n] - sent[n]) * 1000 for n in sent if n in got)
if not lat:
    sys.exit("no job reached the worker")
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
missing = [n for n in sent if n not in got]
print(f"samples={len(lat)} lost={samples - len(lat)} {missing[:5]} p50_ms={p(0.50):.2f} p99_ms={p(0.99):.2f}"
      f" max_ms={lat[-1]:.2f} mean_ms={statistics.mean(lat):.2f}")
