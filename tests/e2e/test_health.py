"""/healthz, /readyz following Postgres away and back, /metrics checked by
promtool, request ids and JSON errors, graceful shutdown of in-flight work."""
import subprocess
import urllib.parse

from tfharness import (BASE_URL, Database, TaskFlow, TcpProxy, fail, is_uuid, run_tests,
                       wait_for, with_hostport)

db = Database("health")
target = urllib.parse.urlsplit(BASE_URL)
proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
# Reconnect quickly in this test; TaskFlow's pool backs off up to 5 s by default.
tf = TaskFlow(with_hostport(db.url, "127.0.0.1", proxy.port))


def test_healthz():
    status, headers, body = tf.request("GET", "/healthz")
    assert status == 200, (status, body)
    assert body == {"status": "ok"}, body
    assert is_uuid(headers.get("x-request-id")), headers


def test_readyz_follows_postgres():
    wait_for(lambda: tf.request("GET", "/readyz")[0] == 200, 15, what="readyz 200")
    proxy.down()
    wait_for(lambda: tf.request("GET", "/readyz")[0] == 503, 15, what="readyz 503")
    status, _, body = tf.request("GET", "/readyz")
    assert status == 503 and body["error"]["code"] == "unavailable", body
    assert tf.request("GET", "/healthz")[0] == 200
    proxy.up()
    wait_for(lambda: tf.request("GET", "/readyz")[0] == 200, 20, what="readyz back to 200")
    assert tf.alive()


def test_request_id_is_echoed():
    status, headers, _ = tf.request("GET", "/healthz", headers={"X-Request-Id": "req-abc.123"})
    assert status == 200 and headers["x-request-id"] == "req-abc.123", headers
    # Too long or with spaces: replaced by a fresh UUIDv7.
    status, headers, _ = tf.request("GET", "/healthz", headers={"X-Request-Id": "x" * 200})
    assert is_uuid(headers["x-request-id"]), headers


def test_unknown_route_is_json_404():
    status, headers, body = tf.request("GET", "/nope")
    assert status == 404, status
    assert body["error"]["code"] == "not_found", body
    assert "message" in body["error"] and "details" in body["error"], body
    status, headers, body = tf.request("POST", "/healthz", body=b"")
    assert status == 405 and body["error"]["code"] == "method_not_allowed", body
    assert "GET" in headers.get("allow", ""), headers


def test_metrics_pass_promtool():
    for _ in range(3):
        tf.request("GET", "/healthz")
    tf.request("GET", "/nope")
    status, headers, text = tf.request("GET", "/metrics")
    assert status == 200, status
    assert headers["content-type"].startswith("text/plain"), headers
    for family in ("taskflow_http_requests_total", "taskflow_http_request_duration_seconds",
                   "taskflow_pg_connections", "taskflow_pg_pool_busy_connections"):
        if family not in text:
            fail(f"{family} missing from /metrics")
    assert 'route="/healthz"' in text and 'status="200"' in text, text[:2000]
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
    if check.returncode != 0:
        fail(f"promtool: {check.stdout} {check.stderr}")


def test_logs_are_json_lines_without_secrets():
    import json
    for line in tf.logs:
        rec = json.loads(line)
        for key in ("ts", "level", "msg"):
            assert key in rec, rec
    assert not any("password" in line for line in tf.logs)


try:
    run_tests([test_healthz, test_readyz_follows_postgres, test_request_id_is_echoed,
               test_unknown_route_is_json_404, test_metrics_pass_promtool,
               test_logs_are_json_lines_without_secrets])
finally:
    tf.stop()
    proxy.close()
    db.drop()
