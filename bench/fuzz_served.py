"""An outside Schemathesis run against a served Parley: random seed, concurrent workers, every route.

Serves `parley serve` on a fresh SQLite file (or PostgreSQL with --postgres) with the shipped
negotiations loaded, runs the `st` command line against its OpenAPI schema with an admin key and
counts, from the server's own request log, every answer by status and the slowest per route.
What matters: no 5xx of any kind (no 500, no 503 from a query that ran out of time) and no
request that took as long as the query time limit. Run:

    .venv/bin/python -m bench.fuzz_served                         # ~20,000 requests, 2 workers, random seed
    .venv/bin/python -m bench.fuzz_served --max-examples 2 --seed 7   # a smoke run
"""

from __future__ import annotations

import argparse
import collections
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.process import create_key, drop_postgres_tables, log_lines, start_server, stop_server

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=7,
                        help="Schemathesis examples per operation and phase (7: about 20,000 requests on today's schema)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    parser.add_argument("--postgres", action="store_true", help=f"serve on {POSTGRES_URL} (its tables are dropped first)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    with tempfile.TemporaryDirectory(prefix="parley-fuzz-") as tmp:
        folder = Path(tmp)
        database = POSTGRES_URL if args.postgres else str(folder / "parley.db")
        if args.postgres:
            drop_postgres_tables(database)
        subprocess.run([sys.executable, "-m", "service", "demo", "load", "--database", database], check=True,
                       capture_output=True)
        admin = create_key(database, "fuzz-admin", "admin")
        log = folder / "server.log"
        env = {"PARLEY_SIGNING_KEY_FILE": str(folder / "signing.key"), "PARLEY_RATE_LIMIT": "0"}
        server, base_url = start_server(database, log, env=env)
        try:
            paths = len(httpx.get(f"{base_url}/schema/openapi.json").json()["paths"])
            print(f"seed {seed}; {paths} paths; --max-examples {args.max_examples}; {args.workers} workers", flush=True)
            started = time.monotonic()
            run = subprocess.run(
                [str(Path(sys.executable).with_name("st")), "run", f"{base_url}/schema/openapi.json",
                 "--url", base_url, "-H", f"Authorization: Bearer {admin}", "--workers", str(args.workers),
                 "--max-examples", str(args.max_examples), "--seed", str(seed), "--request-timeout", "30",
                 "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing",
                 "--suppress-health-check", "all"],
                capture_output=True, text=True,
            )
            took = time.monotonic() - started
        finally:
            stop_server(server)
        requests = [line for line in log_lines(log, "request") if line.get("path") not in ("/ready",)]
        statuses = collections.Counter(int(line["status"]) for line in requests)
        slowest = sorted(requests, key=lambda line: -float(line["duration_ms"]))[:5]
        print(f"{len(requests)} requests in {took:.0f} s; statuses: {dict(sorted(statuses.items()))}")
        print("slowest: " + "; ".join(f"{line['method']} {line['path']} {line['status']} {float(line['duration_ms']):.0f} ms"
                                      for line in slowest))
        server_errors = sum(n for status, n in statuses.items() if status >= 500)
        print(f"5xx answers: {server_errors} (503: {statuses.get(503, 0)}); schemathesis exit code {run.returncode}")
        if run.returncode != 0:
            print(run.stdout[-4000:])
        return 0 if server_errors == 0 and run.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
