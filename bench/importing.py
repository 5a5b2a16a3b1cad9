"""Import throughput and memory: `parley import` of 10,000 and 100,000 events into SQLite.

Prints events/s for the import (validation pass + per-event keys + batched appends) as a ratio of
appending the same events directly through the application in batches of 500 in the same run, and
the importer's peak RSS for each size (bounded memory: the two should be close).
Run: `.venv/bin/python -m bench.importing`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from events.payloads import AnyEvent
from service.stores import open_log
from service.settings import Settings


def write_file(path: Path, count: int) -> None:
    with path.open("w") as out:
        out.write(json.dumps({"type": "negotiation_opened", "occurred_on": "2020-01-01", "title": "Bench", "parties": ["US", "CN"]}) + "\n")
        for i in range(count - 1):
            day = (dt.date(2020, 1, 1) + dt.timedelta(days=i % 3000)).isoformat()
            if i % 3:
                line = {"type": "statement_made", "occurred_on": day, "speaker": {"name": f"Speaker {i % 40}", "party": "US"},
                        "quote": f"Statement number {i} on the talks.", "source": {"name": "Wire", "published_at": day}}
            else:
                line = {"type": "measure_changed", "occurred_on": day, "measure_id": f"m{i % 30}", "kind": "tariff", "status": "in_force",
                        "imposed_by": "US", "applies_to": "CN", "legal_basis": "IEEPA", "rate_pct": i % 60, "effective_from": day}
            out.write(json.dumps(line) + "\n")


def direct(path: Path, database: str) -> float:
    decode = msgspec.json.Decoder(AnyEvent).decode
    log = open_log(Settings(database_url=database))
    try:
        started = time.perf_counter()
        batch, count = [], 0
        with path.open("rb") as handle:
            for line in handle:
                batch.append(decode(line))
                if len(batch) == 500:
                    log.record("direct", batch, principal="bench", request_id="bench")
                    count, batch = count + len(batch), []
        if batch:
            log.record("direct", batch, principal="bench", request_id="bench")
            count += len(batch)
        return count / (time.perf_counter() - started)
    finally:
        log.close()


def imported(path: Path, database: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "service", "import", str(path), "--negotiation", "bench", "--json", "--database", database],
                         capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    stored = json.loads(out.stdout)["stored"]
    return stored / elapsed, max(peak_kib, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"events-{size}.jsonl"
            write_file(path, size)
            rate_direct = direct(path, str(Path(tmp) / f"direct-{size}.db"))
            rate_import, peak = imported(path, str(Path(tmp) / f"import-{size}.db"))
            rows.append((size, rate_import, rate_direct, peak))
    print(f"{'events':>8} {'import ev/s':>12} {'direct ev/s':>12} {'ratio':>6} {'importer peak RSS':>18}")
    for size, rate_import, rate_direct, peak in rows:
        print(f"{size:>8} {rate_import:>12.0f} {rate_direct:>12.0f} {rate_import / rate_direct:>6.2f} {peak:>15.0f} MiB")
    print("(peak RSS is the largest of the import processes run so far: sizes run in increasing order)")


if __name__ == "__main__":
    main()
