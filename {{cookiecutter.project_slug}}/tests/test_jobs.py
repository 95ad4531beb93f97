{% set is_async = cookiecutter.driver == "async" %}
"""The jobs: recorded with the write that causes them, handled at least once, with
their effects once.

The tests that deliver jobs run against a real Redis (``TEST_REDIS_URL``, default
``redis://localhost:6379/0``), each test under a namespace of its own that it deletes
afterwards. Without one they are skipped with a loud reason — unless ``CI`` is set.
The worker runs as it is deployed: ``python -m {{ cookiecutter.package_name }}.jobs worker``, in a process
of its own, killed and restarted while it works.
"""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
import redis
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import func, select, text

from {{ cookiecutter.package_name }}.db.unit import Database
from {{ cookiecutter.package_name }}.items.jobs import announce_change
from {{ cookiecutter.package_name }}.items.models import ItemEvent
from {{ cookiecutter.package_name }}.jobs import Handler, worker
from {{ cookiecutter.package_name }}.jobs.__main__ import PROG
from {{ cookiecutter.package_name }}.jobs.models import Job
from {{ cookiecutter.package_name }}.settings import Settings

from .support import ask_the_database, free_port, start_server

JOBS = [sys.executable, "-m", "{{ cookiecutter.package_name }}.jobs"]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://localhost:6379/0")
HANDLED = text("SELECT count(*) FROM jobs WHERE handled_at IS NOT NULL")
# A try may run 2 s; a job sent 3 s ago and not handled is sent again.
QUICK = {
    "JOBS_RELAY_INTERVAL": "0.05",
    "JOBS_BACKOFF": "0",
    "JOBS_TIME_LIMIT": "2",
    "JOBS_RESEND_AFTER": "3",
}


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as error:
        reason = f"no Redis answers at {REDIS_URL} ({error})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must test the jobs with their broker")
        pytest.skip(f"SKIPPING THE BROKER TESTS: {reason}")
    return REDIS_URL


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """The test's own keys in Redis, deleted after it."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = client.keys(f"{name}*")
    if keys:
        client.delete(*keys)


@pytest.fixture
def jobs_settings(settings: Settings, redis_url: str, namespace: str) -> Settings:
    return settings.model_copy(
        update={
            "jobs_broker_url": redis_url,
            "jobs_namespace": namespace,
            "jobs_max_attempts": 3,
            "jobs_backoff": 10.0,
        }
    )


@pytest.fixture
async def runtime(committed_app: FastAPI, jobs_settings: Settings) -> AsyncIterator[worker.Runtime]:
    """A worker's runtime in this process, on the test database; its jobs committed."""
    _broker, runtime = worker.connect(jobs_settings)
    try:
        yield runtime
    finally:
        await runtime.database.dispose()


async def jobs_of(database: Database) -> list[Job]:
    async with database.open_session(writes=False) as session:
        jobs = await database.run(session, lambda s: s.scalars(select(Job).order_by(Job.id)).all())
    return list(jobs)


async def announced(database: Database, item_id: int) -> int:
    query = select(func.count()).where(
        ItemEvent.item_id == item_id, ItemEvent.action == "announced"
    )
    async with database.open_session(writes=False) as session:
        return int(await database.run(session, lambda s: s.scalar(query)))


async def test_a_change_records_its_job_in_its_transaction(
    client: AsyncClient, app: FastAPI
) -> None:
    item = (await client.post("/items", json={"name": "lamp"})).json()
    changed = await client.patch(f"/items/{item['id']}", json={"description": "red"})
    assert changed.status_code == 200
    assert (await client.delete(f"/items/{item['id']}")).status_code == 204

    jobs = await jobs_of(app.state.database)
    assert [(job.name, job.payload) for job in jobs] == [
        (announce_change.name, {"item_id": item["id"], "action": "updated"}),
        (announce_change.name, {"item_id": item["id"], "action": "deleted"}),
    ]
    assert all(job.sent_at is None and job.handled_at is None for job in jobs)


async def test_a_write_that_fails_records_no_job(client: AsyncClient, app: FastAPI) -> None:
    first = (await client.post("/items", json={"name": "lamp"})).json()
    await client.post("/items", json={"name": "desk"})

    taken = await client.patch(f"/items/{first['id']}", json={"name": "desk"})
    stale = await client.patch(
        f"/items/{first['id']}", json={"description": "red"}, headers={"If-Match": '"99"'}
    )

    assert (taken.status_code, stale.status_code) == (409, 412)
    assert await jobs_of(app.state.database) == []


async def test_a_job_has_its_effect_once_however_often_it_is_delivered(
    committed_client: AsyncClient, runtime: worker.Runtime
) -> None:
    item = (await committed_client.post("/items", json={"name": "lamp"})).json()
    await committed_client.patch(f"/items/{item['id']}", json={"description": "red"})
    (job,) = await jobs_of(runtime.database)

    await asyncio.gather(*(runtime.handle(job.id) for _ in range(3)))
    await runtime.handle(job.id)

    assert await announced(runtime.database, item["id"]) == 1
    (handled,) = await jobs_of(runtime.database)
    assert handled.handled_at is not None
    assert handled.attempts == 0


async def test_a_failing_job_is_retried_later_then_dead_then_replayed(
    committed_client: AsyncClient,
    runtime: worker.Runtime,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    item = (await committed_client.post("/items", json={"name": "lamp"})).json()
    await committed_client.patch(f"/items/{item['id']}", json={"description": "red"})
    (job,) = await jobs_of(runtime.database)

    {{ cookiecutter.__async }}def fails(*_: object) -> None:
        raise RuntimeError("the receiver is down")

    monkeypatch.setitem(worker.HANDLERS, announce_change.name, Handler(announce_change.name, fails))
    for backoff in (10, 20):  # JOBS_BACKOFF, doubled
        await runtime.handle(job.id)
        (tried,) = await jobs_of(runtime.database)
        assert (tried.sent_at, tried.dead_at) == (None, None)  # the relay sends it once due
        assert backoff - 2 < (tried.due_at - datetime.now(UTC)).total_seconds() <= backoff
    await runtime.handle(job.id)
    (dead,) = await jobs_of(runtime.database)
    assert dead.attempts == 3
    assert dead.dead_at is not None
    assert dead.last_error == "RuntimeError: the receiver is down"

    await runtime.handle(job.id)  # a dead job delivered again: nothing is tried
    assert (await jobs_of(runtime.database))[0].attempts == 3

    listed = jobs_command(runtime.settings, tmp_path, "dead")
    assert listed.splitlines()[0].split("\t")[:3] == [str(job.id), announce_change.name, "3"]
    assert "RuntimeError: the receiver is down" in listed
    assert jobs_command(runtime.settings, tmp_path, "replay", "--all") == "1 dead job due again\n"

    monkeypatch.undo()
    (replayed,) = await jobs_of(runtime.database)
    assert (replayed.dead_at, replayed.sent_at, replayed.attempts) == (None, None, 0)
    await runtime.handle(job.id)
    assert await announced(runtime.database, item["id"]) == 1


async def test_a_job_the_broker_did_not_take_stays_to_send(
    committed_client: AsyncClient, jobs_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The relay marks a job sent in the transaction that sends it: with the broker
    down, it marks nothing, and says so."""
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    _broker, runtime = worker.connect(
        jobs_settings.model_copy(update={"jobs_broker_url": nowhere, "jobs_relay_interval": 0.05})
    )
    try:
        item = (await committed_client.post("/items", json={"name": "lamp"})).json()
        await committed_client.patch(f"/items/{item['id']}", json={"description": "red"})
        await runtime.start_relaying()
        await asyncio.sleep(0.5)
        await runtime.stop_relaying()
        (job,) = await jobs_of(runtime.database)
    finally:
        await runtime.database.dispose()

    assert job.sent_at is None
    assert "Jobs not relayed: ConnectionError" in caplog.text


def jobs_command(settings: Settings, cwd: Path, *arguments: str) -> str:
    """``python -m {{ cookiecutter.package_name }}.jobs ARGUMENTS`` on the test database; what it printed."""
    result = subprocess.run(
        [*JOBS, *arguments],
        cwd=cwd,  # not the project's: its .env is the developer's
        env={**os.environ, "DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        (
            {"JOBS_BROKER_URL": "http://localhost"},
            "JOBS_BROKER_URL: is not a Redis URL; expected redis://, rediss:// or unix://",
        ),
        (
            {"JOBS_TIME_LIMIT": "60", "JOBS_RESEND_AFTER": "60"},
            "settings: JOBS_RESEND_AFTER must be longer than JOBS_TIME_LIMIT",
        ),
    ],
)
def test_the_worker_refuses_to_start_on_a_bad_setting(
    variables: dict[str, str], problem: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [*JOBS, "worker"],
        cwd=tmp_path,
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == f"{PROG}: cannot start: {problem}\n"


class Worker:
    """``python -m {{ cookiecutter.package_name }}.jobs worker`` in a process of its own, its output in ``log``."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None
        # Held while a process starts: one a failed test's thread was starting is
        # killed once it has started, never left running on the next test's database.
        self.starting = threading.Lock()
        self.closed = False

    def start(self) -> None:
        with self.starting:
            assert not self.closed, "the test is over"
            self._start()

    def close(self) -> None:
        """Kill the process, and any that a start under way brings."""
        with self.starting:
            self.closed = True
            if self.process is not None and self.process.poll() is None:
                self.stop(signal.SIGKILL)

    def _start(self) -> None:
        started = self.log.read_text().count("Worker started") if self.log.exists() else 0
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [*JOBS, "worker"],
                cwd=self.log.parent,
                env={**os.environ, **self.env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while self.log.read_text().count("Worker started") == started:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"the worker did not start:\n{self.log.read_text()}"
            time.sleep(0.05)

    def restart(self, **env: str) -> None:
        self.stop()
        self.env |= env
        self.start()

    def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=60)


@pytest.fixture
def running(
    committed_app: FastAPI, jobs_settings: Settings, tmp_path: Path
) -> Iterator[tuple[str, Worker]]:
    """The service and a worker, as deployed, on the test database and the test's keys."""
    env = {
        **QUICK,
        "DATABASE_URL": jobs_settings.database_url,
        "JOBS_BROKER_URL": jobs_settings.jobs_broker_url,
        "JOBS_NAMESPACE": jobs_settings.jobs_namespace,
{% if cookiecutter.metrics %}
        "JOBS_METRICS_PORT": str(free_port()),
{% endif %}
    }
    server, port = start_server(jobs_settings.database_url, tmp_path / "server.log")
    jobs = Worker(env, tmp_path / "worker.log")
    try:
        jobs.start()
        yield f"http://127.0.0.1:{port}", jobs
    finally:
        jobs.close()
        server.terminate()
        server.wait(timeout=30)


async def change_items(base_url: str, writes: int, clients: int = 16) -> dict[int, int]:
    """``writes`` changes to ``clients`` items, a client each, all at once; how many each had."""
    async with httpx2.AsyncClient(base_url=base_url, timeout=60) as http:
        ids = [
            (await http.post("/items", json={"name": f"item {n}"})).json()["id"]
            for n in range(clients)
        ]
        counts = {
            item_id: writes // clients + (n < writes % clients) for n, item_id in enumerate(ids)
        }

        async def change(item_id: int) -> None:
            for n in range(counts[item_id]):
                answer = await http.patch(f"/items/{item_id}", json={"description": f"change {n}"})
                assert answer.status_code == 200, answer.text

        await asyncio.gather(*(change(item_id) for item_id in ids))
    return counts


async def handled_within(database_url: str, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (handled := await ask_the_database(database_url, HANDLED)) < count:
        assert time.monotonic() < deadline, f"{handled} of {count} jobs handled in {seconds} s"
        await asyncio.sleep(0.1)


async def effects(database_url: str, counts: dict[int, int]) -> dict[int, int]:
    query = text("SELECT count(*) FROM item_events WHERE action = 'announced' AND item_id = :id")
    return {item_id: await ask_the_database(database_url, query, id=item_id) for item_id in counts}


async def test_a_thousand_writes_from_16_clients_are_each_handled_once(
    running: tuple[str, Worker], jobs_settings: Settings
) -> None:
    """With no fault, no job is sent twice, and none waits for a resend."""
    base_url, jobs = running
    url = jobs_settings.database_url
    jobs.restart(JOBS_RESEND_AFTER="300")

    counts = await change_items(base_url, 1000)
    await handled_within(url, 1000, seconds=60)

    assert await effects(url, counts) == counts
    assert await ask_the_database(url, text("SELECT count(*) FROM jobs")) == 1000
    assert await ask_the_database(url, text("SELECT count(*) FROM jobs WHERE attempts > 0")) == 0
    assert "dropped" not in jobs.log.read_text()  # each sent once: none was lost
{% if cookiecutter.metrics %}
    exposed = httpx2.get(f"http://127.0.0.1:{jobs.env['JOBS_METRICS_PORT']}/metrics").text
    assert "jobs_queued_total 1000.0" in exposed
    assert "jobs_handled_total 1000.0" in exposed
{% endif %}


async def test_workers_killed_midway_lose_no_job_and_repeat_no_effect(
    running: tuple[str, Worker], jobs_settings: Settings
) -> None:
    """The worker and its relay are killed outright twice while the writes go on: the
    jobs they held are sent again (JOBS_RESEND_AFTER), and a job handled before a kill
    is dropped when it comes back."""
    base_url, jobs = running
    url = jobs_settings.database_url

    async def kill_twice() -> None:
        for handled in (100, 200):
            await handled_within(url, handled, seconds=60)
            assert await asyncio.to_thread(jobs.stop, signal.SIGKILL) == -signal.SIGKILL
            await asyncio.to_thread(jobs.start)

    counts, _ = await asyncio.gather(change_items(base_url, 300), kill_twice())
    await handled_within(url, 300, seconds=60)

    assert await effects(url, counts) == counts
    assert await ask_the_database(url, text("SELECT count(*) FROM jobs")) == 300


async def test_a_stopped_worker_finishes_or_gives_back_its_jobs(
    running: tuple[str, Worker], jobs_settings: Settings
) -> None:
    """SIGTERM while jobs are under way: none is lost though none is sent again
    (JOBS_RESEND_AFTER is far off), none is done twice."""
    base_url, jobs = running
    url = jobs_settings.database_url
    jobs.restart(JOBS_RESEND_AFTER="300")

    async def stop_midway() -> None:
        await handled_within(url, 100, seconds=60)
        assert await asyncio.to_thread(jobs.stop, signal.SIGTERM) == 0
        await asyncio.to_thread(jobs.start)

    counts, _ = await asyncio.gather(change_items(base_url, 300), stop_midway())
    await handled_within(url, 300, seconds=60)

    assert await effects(url, counts) == counts
