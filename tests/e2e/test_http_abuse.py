"""Malformed and hostile HTTP against the real binary: each gets a 4xx or a
closed connection, never a crash, and the server keeps serving."""
import resource
import socket
import time

from tfharness import Database, TaskFlow, read_until_close, run_tests, status_of

db = Database("abuse")
tf = TaskFlow(db.url, "--header-timeout-ms", "2000", "--idle-timeout-ms", "30000")


def still_serving():
    status, _, _ = tf.request("GET", "/healthz")
    assert status == 200, status
    assert tf.alive(), "server died"


def test_garbage_bytes():
    for junk in (b"\x00\xff\xfe garbage \r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"G\x01T /healthz HTTP/1.1\r\n\r\n", b"\r\n\r\n\r\n" * 100,
                 bytes(range(256)) * 4,
                 b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /healthz HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"):
        reply = tf.raw(junk, timeout=5)
        status = status_of(reply)
        assert status is None or 400 <= status < 500, (junk[:40], reply[:200])
    still_serving()


def test_huge_header_gets_431():
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (100 * 1024) + b"\r\n\r\n"
    reply = tf.raw(req, timeout=5)
    assert status_of(reply) == 431, reply[:200]
    assert b'"request_header_fields_too_large"' in reply, reply[:400]
    still_serving()


def test_huge_body_gets_413():
    s = socket.create_connection(("127.0.0.1", tf.port), timeout=10)
    size = 10 * 1024 * 1024
    s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(size).encode() + b"\r\n\r\n")
    sent = 0
    try:
        chunk = b"x" * 65536
        while sent < size:
            s.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed early: what we want
    reply = read_until_close(s, 5)
    s.close()
    assert status_of(reply) in (413, None), reply[:200]
    if status_of(reply) is None:
        assert sent < size, "server read a 10 MiB body without answering"
    still_serving()


def test_huge_chunked_body_gets_413():
    s = socket.create_connection(("127.0.0.1", tf.port), timeout=10)
    s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    reply = b""
    try:
        for _ in range(200):  # 200 x 64 KiB = 12.5 MiB
            s.sendall(b"10000\r\n" + b"y" * 65536 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = read_until_close(s, 5)
    s.close()
    assert status_of(reply) in (413, None), reply[:200]
    still_serving()


def test_slow_client_is_cut_off():
    s = socket.create_connection(("127.0.0.1", tf.port), timeout=10)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100
    start = time.monotonic()
    closed = False
    reply = b""
    for byte in request:
        try:
            s.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        s.settimeout(1.0)
        try:
            data = s.recv(4096)
            reply += data
            if not data:
                closed = True
                break
        except socket.timeout:
            pass
        if time.monotonic() - start > 15:
            break
    s.close()
    elapsed = time.monotonic() - start
    assert closed or status_of(reply) == 408, f"slow client not cut off after {elapsed:.1f}s"
    assert elapsed < 10, elapsed
    if reply:
        assert status_of(reply) == 408, reply[:200]
    still_serving()


def test_request_in_tiny_writes():
    s = socket.create_connection(("127.0.0.1", tf.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: tiny\r\nConnection: close\r\n\r\n"
    for i in range(len(req)):
        s.sendall(req[i:i + 1])
        time.sleep(0.002)
    reply = read_until_close(s, 5)
    s.close()
    assert status_of(reply) == 200, reply[:200]
    assert b"X-Request-Id: tiny" in reply or b"x-request-id: tiny" in reply.lower(), reply


def test_pipelined_requests_answered_in_order():
    req = b"".join(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p%d\r\n\r\n" % i
                   for i in range(5))
    req += b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: p5\r\nConnection: close\r\n\r\n"
    reply = tf.raw(req, timeout=5)
    order = [reply.find(b"p%d\r\n" % i) for i in range(6)]
    assert all(o >= 0 for o in order), reply
    assert order == sorted(order), order


def test_thousand_idle_connections():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    socks = []
    try:
        for _ in range(1000):
            socks.append(socket.create_connection(("127.0.0.1", tf.port), timeout=10))
        still_serving()
        # Half of them now send a request and get an answer.
        for s in socks[::2]:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in socks[::2]:
            s.settimeout(10)
            assert s.recv(4096).startswith(b"HTTP/1.1 200"), "no answer on an idle connection"
    finally:
        for s in socks:
            s.close()
    still_serving()


try:
    run_tests([test_garbage_bytes, test_huge_header_gets_431, test_huge_body_gets_413,
               test_huge_chunked_body_gets_413, test_slow_client_is_cut_off,
               test_request_in_tiny_writes, test_pipelined_requests_answered_in_order,
               test_thousand_idle_connections])
finally:
    tf.stop()
    db.drop()
