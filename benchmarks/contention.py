"""Many clients writing the same rows at once: requests/s and every non-2xx answer.

    python3 tasks.py contention [--variants sqlite-async-dependency,...]
                                [--clients 40] [--seconds 10] [--rounds 3]

For each variant (the SQLite ones by default): bake, install, migrate a fresh
database seeded with the benchmark's items, serve it with one uvicorn worker
and its default settings, and let wrk's ``--clients`` connections mix creates,
reads and PATCHes of the same 20 items. Prints the median requests/s over the
rounds and every non-2xx answer and socket error. Needs wrk.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from run import WRK_SCRIPTS, drop_database, free_port, reset, seed, start, variant_target, wrk

from tests.matrix import VARIANTS  # run.py puts the template on sys.path

MIXED = """
local n = 0
request = function()
  n = n + 1
  local id = math.random(1, 20)
  local pick = math.random(1, 3)
  if pick == 1 then
    local body = '{"name": "PREFIX-' .. n .. '"}'
    return wrk.format("POST", "/items", {["Content-Type"] = "application/json"}, body)
  elseif pick == 2 then
    return wrk.format("GET", "/items/" .. id)
  end
  local body = '{"description": "PREFIX-' .. n .. '"}'
  return wrk.format("PATCH", "/items/" .. id, {["Content-Type"] = "application/json"}, body)
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sqlite = [variant.id for variant in VARIANTS if variant.database == "sqlite"]
    parser.add_argument("--variants", default=",".join(sqlite))
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    WRK_SCRIPTS["mixed"] = MIXED

    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        for variant in [v for v in VARIANTS if v.id in args.variants.split(",")]:
            target = variant_target(variant, work, {})
            seed(target)
            port = free_port()
            server = start(target, port)
            try:
                runs = []
                for _ in range(args.rounds):
                    runs.append(wrk(port, "mixed", args.seconds, work, args.clients))
                    reset(target)
            finally:
                server.terminate()
                server.wait(timeout=30)
            if not target.sqlite:
                drop_database(target.database)
            rates = [run["requests"] / (run["duration_us"] / 1e6) for run in runs]
            requests = sum(run["requests"] for run in runs)
            failed = sum(run["non_2xx"] for run in runs)
            errors = sum(run["socket_errors"] for run in runs)
            print(
                f"{variant.id}: {statistics.median(rates):,.0f} req/s (median of {args.rounds}), "
                f"{requests:,} requests, non-2xx {failed:,} ({failed / max(requests, 1):.1%}), "
                f"socket errors {errors:,}",
                flush=True,
            )


if __name__ == "__main__":
    main()
