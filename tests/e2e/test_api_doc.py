"""docs/api.md's examples work as written: every ```sh block runs, in order,
in one `bash -e -o pipefail` session against a fresh server (with TF and
ADMIN exported; the doc obtains KEY itself), and must exit 0.  A block
marked ```sh-fails NNN shows an error on purpose: it must still exit 0 and
print (curl -i) an HTTP status line NNN with the JSON error of that status.
Every operation of docs/openapi.json must have an example.
"""
import json
import os
import re
import subprocess
import tempfile
import uuid

from tfharness import Database, TaskFlow, fail, run_tests

SOURCE_DIR = os.environ.get("TASKFLOW_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(SOURCE_DIR, "docs", "api.md")
OPENAPI = os.path.join(SOURCE_DIR, "docs", "openapi.json")
ADMIN = "tf-admin-" + uuid.uuid4().hex
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
CODES = {400: ("invalid_json", "bad_request"), 401: ("unauthorized",), 404: ("not_found",),
         409: ("conflict",), 413: ("payload_too_large",), 415: ("unsupported_media_type",),
         422: ("validation_failed",)}


def blocks():
    """[(line number, info string, code)] of the runnable blocks, in order."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).strip()
        if info == "sh" or info.startswith("sh-fails"):
            out.append((text.count("\n", 0, m.start()) + 1, info, m.group(2)))
    return out


def test_doc_has_runnable_examples():
    found = blocks()
    assert len(found) >= 10, found
    for line, info, _ in found:
        if info.startswith("sh-fails") and not re.fullmatch(r"sh-fails \d{3}", info):
            fail(f"docs/api.md:{line}: write the expected status: ```sh-fails NNN")


def test_every_operation_has_an_example():
    with open(OPENAPI) as f:
        spec = json.load(f)
    code = "\n".join(c for _, _, c in blocks())
    # Join continued lines so that one command is one line.
    commands = [c for c in code.replace("\\\n", " ").split("\n") if "curl" in c]
    missing = []
    for template, item in spec["paths"].items():
        pattern = re.escape(template)
        pattern = re.sub(r"\\\{[^}]*\\\}", r'[^/"\\s?]+', pattern)
        url = re.compile(r'\$\{?TF\}?' + pattern + r'(?:[?"\'\s]|$)')
        for method in ("get", "put", "post", "delete", "patch"):
            if method not in item:
                continue
            def has(cmd):
                if not url.search(cmd):
                    return False
                explicit = re.search(r"(?:-X|--request)\s+([A-Z]+)", cmd)
                if explicit:
                    return explicit.group(1) == method.upper()
                if re.search(r"\s(?:-G|--get)\s", cmd):
                    return method == "get"
                if method == "get":
                    return not re.search(r"\s(?:-d|--data[\w-]*)\s", cmd)
                return method == "post" and re.search(r"\s(?:-d|--data[\w-]*)\s", cmd)
            if not any(has(c) for c in commands):
                missing.append(f"{method.upper()} {template}")
    if missing:
        fail("docs/api.md has no curl example for: " + ", ".join(missing))


def test_examples_run():
    found = blocks()
    script = ["set -o pipefail"]
    for i, (_, _, code) in enumerate(found):
        script.append(f"printf '\\n@@tf-block-begin {i}\\n'")
        script.append(code.rstrip("\n"))
        script.append(f"printf '\\n@@tf-block-end {i}\\n'")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "api-doc.sh")
        with open(path, "w") as f:
            f.write("\n".join(script) + "\n")
        # A private curlrc: no user settings, and no request hangs forever.
        with open(os.path.join(tmp, ".curlrc"), "w") as f:
            f.write("max-time = 30\n")
        env = {k: v for k, v in os.environ.items() if k not in ("KEY", "CURL_HOME")}
        env.update({"TF": f"http://127.0.0.1:{tf.port}", "ADMIN": ADMIN, "CURL_HOME": tmp})
        out = subprocess.run(["bash", "-e", path], capture_output=True, text=True, env=env,
                             timeout=600, cwd=tmp)
    outputs = {}
    for m in re.finditer(r"@@tf-block-begin (\d+)\n(.*?)(?=@@tf-block-(?:begin|end) |\Z)",
                         out.stdout, re.S):
        outputs[int(m.group(1))] = m.group(2)
    ended = {int(n) for n in re.findall(r"@@tf-block-end (\d+)", out.stdout)}
    for i, (line, info, code) in enumerate(found):
        if i not in ended:
            fail(f"docs/api.md:{line}: block exited non-zero (bash exit {out.returncode}):\n"
                 f"{code}\n--- output:\n{outputs.get(i, '')[-2000:]}\n--- stderr:\n"
                 f"{out.stderr[-2000:]}")
        if info.startswith("sh-fails"):
            want = int(info.split()[1])
            text = outputs.get(i, "")
            m = re.search(r"^HTTP/1\.[01] (\d{3})", text, re.M)
            if not m or int(m.group(1)) != want:
                fail(f"docs/api.md:{line}: want HTTP {want} (use curl -i), got:\n{text[-1500:]}")
            body = text.split("\r\n\r\n", 1)[-1].strip() if "\r\n\r\n" in text else \
                text.split("\n\n", 1)[-1].strip()
            try:
                code_seen = json.loads(body)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                fail(f"docs/api.md:{line}: the answer is not a JSON error:\n{text[-1500:]}")
            if code_seen not in CODES.get(want, (code_seen,)):
                fail(f"docs/api.md:{line}: error code {code_seen} for HTTP {want}")
    assert out.returncode == 0, out.stderr[-2000:]


db = Database("api_doc")
tf = TaskFlow(db.url, env={"TASKFLOW_ADMIN_TOKEN": ADMIN})
try:
    run_tests([test_doc_has_runnable_examples, test_every_operation_has_an_example,
               test_examples_run])
finally:
    tf.stop()
    db.drop()
