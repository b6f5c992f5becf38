"""bench_split_reader.py: the continuous reader of bench_split.sh. Reads the pages of one relation
round robin through a pageserver's page service (tenant-level: the pageserver picks the owning
shard by key) until SIGTERM, then prints one JSON line: reads, errors, wrong pages (compared with
the first answer seen for each page), and the longest gap between two successful reads inside
the window written to WINDOW_FILE before the SIGTERM ("<start> <end>" in CLOCK_MONOTONIC seconds,
the split's start and end; `cat /proc/uptime`-style clocks differ, so the script takes them with
this same clock: `python3 -c 'import time; print(time.monotonic())'`), or over the whole run when
the file is empty.

usage: bench_split_reader.py HOST:PORT TENANT TIMELINE SPC DB REL NBLOCKS WINDOW_FILE
"""

import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from fixtures.pagestream import GET_PAGE, LATEST, Request, connect  # noqa: E402

stop = False


def on_term(signum, frame):
    global stop
    stop = True


def main():
    hostport, tenant, tl, spc, db, rel, nblocks, window_file = sys.argv[1:9]
    port = int(hostport.rsplit(":", 1)[1])
    spc, db, rel, nblocks = int(spc), int(db), int(rel), int(nblocks)
    signal.signal(signal.SIGTERM, on_term)
    seen = {}
    oks = []
    reads = errors = wrong = 0
    conn = None
    blk = 0
    while not stop:
        try:
            if conn is None:
                conn = connect(port, tenant, tl, 2)
            r = conn.call(Request(GET_PAGE, LATEST, 0, rel=(spc, db, rel, 0), blkno=blk))
            if r.is_error:
                errors += 1
            else:
                if seen.setdefault(blk, r.data) != r.data:
                    wrong += 1
                reads += 1
                oks.append(time.monotonic())
            blk = (blk + 1) % nblocks
        except Exception:  # noqa: BLE001 - counted; reconnect
            errors += 1
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)
    window = Path(window_file).read_text().split()
    lo, hi = (float(window[0]), float(window[1])) if len(window) == 2 else (0.0, float("inf"))
    gap = 0.0
    inside = [t for t in oks if lo - 1 <= t <= hi + 1]
    for a, b in zip(inside, inside[1:]):
        gap = max(gap, b - a)
    print(json.dumps({"reads": reads, "errors": errors, "wrong": wrong,
                      "longest_gap_s": round(gap, 4), "reads_in_window": len(inside)}))


if __name__ == "__main__":
    main()
