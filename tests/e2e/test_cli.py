"""The taskflow command line: subcommands, --help, usage errors (exit 2),
migrations run twice, and a port already in use."""
import os
import socket
import subprocess

from tfharness import BIN, Database, TaskFlow, fail, run_tests

db = Database("cli")


def run(*args, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    full["PATH"] = os.environ["PATH"]
    full.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=full, timeout=60)


def test_version_prints_version():
    out = run("version")
    assert out.returncode == 0, out
    assert out.stdout.startswith("taskflow "), out.stdout


def test_every_subcommand_has_help():
    for cmd in ("serve", "migrate", "version"):
        out = run(cmd, "--help")
        assert out.returncode == 0, (cmd, out)
        assert "Usage: taskflow" in out.stdout, (cmd, out.stdout)
    out = run("--help")
    assert out.returncode == 0 and "Commands:" in out.stdout


def test_usage_errors_exit_2():
    cases = [
        ((), None, "Usage"),
        (("frobnicate",), None, "unknown command 'frobnicate'"),
        (("serve", "--bogus"), None, "unknown argument '--bogus'"),
        (("serve", "--port", "http"), None, "--port: 'http'"),
        (("serve", "--port"), None, "missing value for --port"),
        (("serve", "--threads", "-3"), None, "--threads"),
        (("serve",), {"TASKFLOW_DATABASE_URL": db.url, "TASKFLOW_LOG_LEVEL": "chatty"},
         "TASKFLOW_LOG_LEVEL: 'chatty'"),
        (("serve",), None, "TASKFLOW_DATABASE_URL"),
        (("migrate", "--max-body-bytes", "-1"), None, "--max-body-bytes"),
        (("version", "extra"), None, "no arguments"),
    ]
    for args, env, needle in cases:
        out = run(*args, env=env)
        if out.returncode != 2:
            fail(f"{args}: exit {out.returncode}, want 2; stderr={out.stderr!r}")
        if needle not in out.stderr:
            fail(f"{args}: stderr {out.stderr!r} lacks {needle!r}")


def test_configuration_doc_lists_every_setting():
    import re
    doc = open(os.path.join(os.environ["TASKFLOW_SOURCE_DIR"], "docs/configuration.md")).read()
    text = run("serve", "--help").stdout
    names = re.findall(r"(--[a-z-]+)\s+(TASKFLOW_[A-Z_]+)", text)
    assert len(names) >= 10, text
    for flag, env in names:
        if f"`{flag}`" not in doc or f"`{env}`" not in doc:
            fail(f"docs/configuration.md does not document {flag} / {env}")


def test_migrate_twice_is_a_no_op():
    first = run("migrate", env={"TASKFLOW_DATABASE_URL": db.url})
    assert first.returncode == 0, first
    second = run("migrate", env={"TASKFLOW_DATABASE_URL": db.url})
    assert second.returncode == 0, second
    assert '"applied":0' in second.stdout, second.stdout
    count = db.sql("SELECT count(*) FROM schema_migrations")
    assert int(count) >= 1


def test_migrate_refuses_newer_database():
    other = Database("cli_newer")
    try:
        assert run("migrate", env={"TASKFLOW_DATABASE_URL": other.url}).returncode == 0
        other.sql("INSERT INTO schema_migrations (version, name) VALUES (999999, 'future')")
        out = run("migrate", env={"TASKFLOW_DATABASE_URL": other.url})
        assert out.returncode == 1, out
        assert "999999" in out.stdout, out.stdout
    finally:
        other.drop()


def test_migrate_with_unreachable_database_fails_clearly():
    out = run("migrate", env={"TASKFLOW_DATABASE_URL":
                              "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"})
    assert out.returncode == 1, out
    assert "migration failed" in out.stdout, out.stdout


def test_port_in_use_fails_to_start():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        out = run("serve", "--port", str(port), env={"TASKFLOW_DATABASE_URL": db.url})
        assert out.returncode == 1, out
        assert "cannot start HTTP server" in out.stdout, out.stdout
    finally:
        busy.close()


def test_serve_stops_cleanly_on_sigterm():
    tf = TaskFlow(db.url)
    assert tf.request("GET", "/healthz")[0] == 200
    assert tf.stop() == 0
    assert any('"msg":"stopped"' in line for line in tf.logs), tf.logs


def test_first_serve_generates_admin_token_once():
    import re
    fresh = Database("cli_token")
    try:
        tf = TaskFlow(fresh.url, env={"TASKFLOW_ADMIN_TOKEN": ""})
        import time
        time.sleep(0.2)
        printed = re.findall(r"shown only this once\): (\S+)", "".join(tf._stderr))
        assert len(printed) == 1, tf._stderr
        token = printed[0]
        status, _, _ = tf.request("GET", "/v1/admin/tenants",
                                  headers={"Authorization": f"Bearer {token}"})
        assert status == 200, status
        assert tf.stop() == 0
        stored = fresh.sql("SELECT value FROM settings WHERE key = 'admin_token_sha256'")
        import hashlib
        assert stored == hashlib.sha256(token.encode()).hexdigest(), stored
        assert token not in fresh.sql("SELECT string_agg(value, ',') FROM settings")
        assert not any(token in line for line in tf.logs), "token logged"
        again = TaskFlow(fresh.url, env={"TASKFLOW_ADMIN_TOKEN": ""})
        assert again.request("GET", "/v1/admin/tenants",
                             headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert "shown only this once" not in "".join(again._stderr)
        assert again.stop() == 0
    finally:
        fresh.drop()


try:
    run_tests([test_first_serve_generates_admin_token_once, test_version_prints_version, test_every_subcommand_has_help,
               test_usage_errors_exit_2, test_configuration_doc_lists_every_setting,
               test_migrate_twice_is_a_no_op,
               test_migrate_refuses_newer_database,
               test_migrate_with_unreachable_database_fails_clearly,
               test_port_in_use_fails_to_start, test_serve_stops_cleanly_on_sigterm])
finally:
    db.drop()
