"""The jobs' commands: ``python -m {{ cookiecutter.package_name }}.jobs worker|dead|replay``.

- ``worker``: the worker and its relay (``worker.py``), until SIGTERM or Ctrl-C.
- ``dead``: the dead jobs, one per line: id, name, tries, when it died, last error.
- ``replay ID... | --all``: make dead jobs due again, their tries counted afresh.
"""

import argparse
import asyncio
from collections.abc import Sequence

from ..__main__ import load_settings
from ..db.unit import Database
from ..settings import Settings
from . import outbox

PROG = "python -m {{ cookiecutter.package_name }}.jobs"


async def list_dead(settings: Settings) -> None:
    database = Database(settings)
    try:
        async with database.open_session(writes=False, name="dead jobs") as session:
            jobs = await database.run(session, outbox.dead)
            for job in jobs:
                error = (job.last_error or "").splitlines()[0:1]
                print(job.id, job.name, job.attempts, job.dead_at, *error, sep="\t")
    finally:
        await database.dispose()


async def replay(settings: Settings, ids: Sequence[int] | None) -> None:
    database = Database(settings)
    try:
        async with database.open_session(name="replay dead jobs") as session:
            count = await database.run(session, outbox.replay, ids)
    finally:
        await database.dispose()
    print(f"{count} dead job{'' if count == 1 else 's'} due again")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description="Run and tend the jobs.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run the worker and its relay")
    commands.add_parser("dead", help="list the dead jobs")
    replaying = commands.add_parser("replay", help="make dead jobs due again")
    which = replaying.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID")
    which.add_argument("--all", action="store_true", help="every dead job")
    args = parser.parse_args(argv)
    settings = load_settings(PROG)
    if args.command == "worker":
        from .worker import work  # the broker's client, only where it is used

        work(settings)
    elif args.command == "dead":
        asyncio.run(list_dead(settings))
    else:
        asyncio.run(replay(settings, None if args.all else args.ids))


if __name__ == "__main__":
    main()
