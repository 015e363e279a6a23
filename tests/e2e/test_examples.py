"""The executors of rules-examples/ work as their comments say, run as a
user would: uploaded through the API from the file, jobs submitted, each
job watched to its end against a local stand-in of the service it calls.

send_invoice.lua against a fake invoicing API: 201 creates the invoice and
queues the receipt job (committed with the success), 429 snoozes for
Retry-After without spending attempts, 5xx is retried by the policy then
dies, 400 fails for good at once, a bad payload fails for good before any
call, and an unreachable service is retried.
"""
import http.server
import json
import os
import threading
import uuid

import tfharness as harness
from tfharness import Database, TaskFlow, auth, expect, run_tests

SOURCE_DIR = os.environ.get("TASKFLOW_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(SOURCE_DIR, "rules-examples", "executors")
ADMIN = "tf-admin-" + uuid.uuid4().hex
TERMINAL = ("SUCCEEDED", "FAILED", "DEAD", "CANCELLED")


class InvoiceApi:
    """POST /v1/invoices answers from a per-customer script: a list of
    (status, headers, body) used in turn (the last one repeats)."""

    def __init__(self):
        self.script, self.calls = {}, []
        self.lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with api.lock:
                    api.calls.append({"path": self.path, "body": body,
                                      "key": self.headers.get("Idempotency-Key")})
                    n = sum(1 for c in api.calls if c["body"]["customer"] == body["customer"])
                    answers = api.script.get(body["customer"], [(201, {}, None)])
                status, headers, answer = answers[min(n, len(answers)) - 1]
                if answer is None:
                    answer = {"id": "inv_" + body["customer"], "amount_cents": body["amount_cents"]}
                raw = json.dumps(answer).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def calls_for(self, customer):
        with self.lock:
            return [c for c in self.calls if c["body"]["customer"] == customer]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def get_job(job_id):
    return expect(tf.request("GET", f"/v1/jobs/{job_id}", headers=auth(KEY)), 200)


def wait_state(job_id, states, timeout=30):
    return harness.wait_job(tf, KEY, job_id, states, timeout)


def invoice_job(customer, api=None, **extra):
    job = {"type": "SendInvoice", "payload": {"customer": customer, "amount_cents": 1999,
                                              "currency": "EUR", "api": api or service.url}}
    job.update(extra)
    return expect(tf.request("POST", "/v1/jobs", job, headers=auth(KEY)), 201)


def test_upload_the_example_from_its_file():
    with open(os.path.join(EXAMPLES, "send_invoice.lua"), "rb") as f:
        source = f.read()
    got = expect(tf.request("PUT", "/v1/executors/send_invoice", source,
                            headers=auth(KEY, **{"Content-Type": "text/x-lua"})), 201)
    assert got["handles"] == ["SendInvoice"] and got["timeout_ms"] == 15000, got


def test_created_invoice_queues_the_receipt():
    job = invoice_job("c_ok")
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED", done
    assert done["result"]["invoice_id"] == "inv_c_ok", done
    receipt = get_job(done["result"]["receipt_job"])
    assert receipt["type"] == "EmailReceipt" and receipt["queue"] == "emails", receipt
    assert receipt["parent_id"] == job["id"], receipt
    assert receipt["payload"] == {"customer": "c_ok", "invoice_id": "inv_c_ok"}, receipt
    [call] = service.calls_for("c_ok")
    assert call["key"] == job["id"] and call["body"]["amount_cents"] == 1999, call


def test_busy_service_snoozes_without_spending_attempts():
    service.script["c_busy"] = [(429, {"Retry-After": "0.2"}, {"error": "slow down"}),
                                (429, {"Retry-After": "0.2"}, {"error": "slow down"}),
                                (201, {}, None)]
    job = invoice_job("c_busy", retry_policy={"max_attempts": 1})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "SUCCEEDED", done
    attempts = expect(tf.request("GET", f"/v1/jobs/{job['id']}/attempts", headers=auth(KEY)),
                      200)["attempts"]
    assert [a["outcome"] for a in attempts] == ["snoozed", "snoozed", "succeeded"], attempts
    assert all(a["attempt"] == 1 for a in attempts), attempts
    # No receipt was queued by the snoozed attempts: only the successful one's.
    assert db.sql(f"SELECT count(*) FROM jobs WHERE parent_id = '{job['id']}'") == "1"


def test_server_errors_are_retried_then_die():
    service.script["c_down"] = [(503, {}, {"error": "down"})]
    job = invoice_job("c_down", retry_policy={"strategy": "fixed", "base_delay_ms": 50,
                                              "max_attempts": 3, "jitter": "none"})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "DEAD" and done["attempts"] == 3, done
    assert done["last_error"]["type"] == "invoice_api_503", done
    assert len(service.calls_for("c_down")) == 3
    assert db.sql(f"SELECT count(*) FROM jobs WHERE parent_id = '{job['id']}'") == "0"


def test_a_refused_invoice_fails_for_good():
    service.script["c_bad"] = [(422, {}, {"error": "unknown currency"})]
    job = invoice_job("c_bad", retry_policy={"max_attempts": 5})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "FAILED" and done["attempts"] == 1, done
    assert done["last_error"]["type"] == "invoice_rejected", done
    assert "unknown currency" in done["last_error"]["message"], done


def test_a_bad_payload_fails_before_any_call():
    job = expect(tf.request("POST", "/v1/jobs", {"type": "SendInvoice", "payload": {
        "customer": "c_nopay", "amount_cents": -5, "api": service.url}}, headers=auth(KEY)), 201)
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "FAILED" and done["last_error"]["type"] == "bad_payload", done
    assert service.calls_for("c_nopay") == []


def test_an_unreachable_service_is_retried():
    job = invoice_job("c_gone", api="http://127.0.0.1:1",
                      retry_policy={"strategy": "fixed", "base_delay_ms": 50, "max_attempts": 2,
                                    "jitter": "none"})
    done = wait_state(job["id"], TERMINAL)
    assert done["state"] == "DEAD" and done["attempts"] == 2, done
    assert done["last_error"]["type"] == "invoice_api_unreachable", done


if __name__ == "__main__":
    db = Database("examples")
    service = InvoiceApi()
    tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN, "TASKFLOW_ROLE": "api,worker",
                               "TASKFLOW_HTTP_ALLOW_LOOPBACK": "1",
                               "TASKFLOW_POLL_INTERVAL_MS": "50"})
    TENANT, KEY, _ = harness.new_tenant(tf, ADMIN, "examples")
    try:
        run_tests([test_upload_the_example_from_its_file,
                   test_created_invoice_queues_the_receipt,
                   test_busy_service_snoozes_without_spending_attempts,
                   test_server_errors_are_retried_then_die,
                   test_a_refused_invoice_fails_for_good,
                   test_a_bad_payload_fails_before_any_call,
                   test_an_unreachable_service_is_retried])
    finally:
        tf.stop()
        service.close()
        db.drop()
