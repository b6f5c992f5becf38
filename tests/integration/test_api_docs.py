"""docs/api.md documents every route of both daemons: each row of every HttpRoute table in
storcon/*.c and pageserver/*.c (found by scanning the preprocessed sources, so route macros are
expanded and tables may move between files) must appear in docs/api.md as `METHOD /path`."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r'\{\s*HTTP_(GET|PUT|POST|DELETE|PATCH)\s*,\s*((?:"[^"]*"\s*)+),\s*AUTH_SCOPE_(\w+)')


def cflags():
    out = subprocess.run(["pkg-config", "--cflags", "libevent", "jansson", "libpq", "libcurl"],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def route_rows(daemon: str):
    rows = set()
    flags = cflags()
    for src in sorted((ROOT / daemon).glob("*.c")):
        text = src.read_text()
        if "HttpRoute" not in text:
            continue
        pre = subprocess.run(["cc", "-E", "-P", "-D_GNU_SOURCE", "-I", str(ROOT), *flags, str(src)],
                             check=True, capture_output=True, text=True).stdout
        for method, literal, scope in ROW.findall(pre):
            path = "".join(re.findall(r'"([^"]*)"', literal))
            rows.add((method, path, scope.lower()))
    return rows


def documented(doc: str, method: str, path: str) -> bool:
    return f"`{method} {path}`" in doc


def test_every_route_is_documented():
    doc = (ROOT / "docs" / "api.md").read_text()
    missing = []
    total = 0
    for daemon in ("storcon", "pageserver"):
        rows = route_rows(daemon)
        assert len(rows) > 10, f"no route table found under {daemon}/"
        total += len(rows)
        missing += [f"{daemon}: {m} {p}" for m, p, _ in sorted(rows) if not documented(doc, m, p)]
    assert not missing, "routes missing from docs/api.md:\n" + "\n".join(missing)


def test_the_check_catches_an_undocumented_route():
    rows = route_rows("pageserver")
    method, path, _ = sorted(rows)[0]
    doc = (ROOT / "docs" / "api.md").read_text().replace(f"`{method} {path}`", "")
    assert not documented(doc, method, path)
