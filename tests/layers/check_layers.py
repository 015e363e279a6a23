#!/usr/bin/env python3
"""check_layers.py - the layering of docs/architecture.md, checked.

Fails (exit 1, one line per problem) when:
  - a file outside adapters/pg includes libpq-fe.h, or names a libpq type or
    function (PGresult, PGconn, PQ...): SQL and row decoding live in the
    Postgres store alone;
  - a file outside adapters/pg holds SQL text (a string literal starting a
    SELECT, INSERT, UPDATE or DELETE statement);
  - a file in engine/ includes an I/O header (libuv, libpq, Lua, jansson,
    curl, llhttp, OpenSSL, sockets, threads, files, time) or calls the wall
    clock, the environment or stdio output: the engine decides, it does no
    I/O;
  - two folders include each other, directly or through others (a cycle in
    the folder graph; folders are engine/, lua/, stdlib/ and adapters/<x>/).

Usage: check_layers.py [source dir]   (default: the repository this file is in)
"""
import os
import re
import sys

ROOMS = ("engine", "lua", "stdlib", "adapters")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
LIBPQ_NAME = re.compile(r"\b(PGresult|PGconn|PGnotify|PQ[a-z][A-Za-z]*)\b")
SQL_TEXT = re.compile(r'"\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\s*\()',
                      re.I)
ENGINE_IO_HEADERS = re.compile(
    r"^(uv\.h|libpq-fe\.h|lua\.h|lauxlib\.h|lualib\.h|jansson\.h|curl/.*|llhttp\.h|openssl/.*|"
    r"unistd\.h|fcntl\.h|sys/.*|netinet/.*|arpa/.*|netdb\.h|pthread\.h|time\.h|poll\.h|"
    r"signal\.h|dirent\.h|dlfcn\.h|threads\.h)$")
ENGINE_IO_CALLS = re.compile(
    r"\b(fopen|fprintf|printf|puts|fputs|fwrite|fread|getenv|clock_gettime|gettimeofday|time|"
    r"rand|srand|socket|open|read|write|sleep|usleep)\s*\(")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def folder_of(path):
    parts = path.split("/")
    if parts[0] == "adapters" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0] if parts[0] in ROOMS else None


def sources(root):
    for room in ROOMS:
        base = os.path.join(root, room)
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if name.endswith((".c", ".h")):
                    full = os.path.join(dirpath, name)
                    yield os.path.relpath(full, root), full


def find_cycles(graph):
    """Strongly connected components with more than one folder (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    problems, graph, checked = [], {}, 0
    for rel, full in sources(root):
        checked += 1
        text = strip_comments(open(full, encoding="utf-8", errors="replace").read())
        folder = folder_of(rel)
        includes = INCLUDE.findall(text)
        in_pg = rel.startswith("adapters/pg/")
        for inc in includes:
            target = folder_of(inc)
            if target is not None and folder is not None and target != folder:
                graph.setdefault(folder, set()).add(target)
            if inc == "libpq-fe.h" and not in_pg:
                problems.append(f"{rel}: includes libpq-fe.h outside adapters/pg")
            if rel.startswith("engine/") and ENGINE_IO_HEADERS.match(inc):
                problems.append(f"{rel}: engine/ includes the I/O header <{inc}>")
        if not in_pg:
            m = LIBPQ_NAME.search(text)
            if m:
                problems.append(f"{rel}: names libpq's {m.group(1)} outside adapters/pg")
            m = SQL_TEXT.search(text)
            if m:
                problems.append(f"{rel}: SQL text outside adapters/pg ({m.group(1).strip()} ...)")
        if rel.startswith("engine/"):
            m = ENGINE_IO_CALLS.search(text)
            if m:
                problems.append(f"{rel}: engine/ calls {m.group(1)}()")
    for cycle in find_cycles(graph):
        problems.append("folders include each other in a cycle: " + " <-> ".join(cycle))
    for p in problems:
        print(p)
    if checked == 0:
        print(f"no sources found under {root}")
        return 1
    if not problems:
        edges = sum(len(v) for v in graph.values())
        print(f"layers ok: {checked} files, {len(graph)} folders, {edges} folder edges, no cycle")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
