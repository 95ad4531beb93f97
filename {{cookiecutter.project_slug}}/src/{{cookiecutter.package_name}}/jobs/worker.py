{% set is_async = cookiecutter.driver == "async" %}
"""The worker: dramatiq's, on Redis, with the relay beside it in the same process
(``python -m {{ cookiecutter.package_name }}.jobs worker``).

- **The relay** hands due jobs to the broker, a batch per unit of work, every
  ``JOBS_RELAY_INTERVAL`` seconds while there are none: each is marked sent in the
  transaction that sends it, so a relay that dies before its commit sends it again.
- **A delivery** runs the job's handler in a unit of work of its own that first claims
  the job (``outbox.claim``): a job handled already, or dead, is dropped.
- **A failed try** (an exception, or a handler past ``JOBS_TIME_LIMIT`` seconds) is
  counted in the outbox, which makes the job due again after a backoff, or dead after
  ``JOBS_MAX_ATTEMPTS`` tries. Retries live in the database, not in the broker: a
  broker that lost its queues loses no job, as the relay sends again a job sent
  ``JOBS_RESEND_AFTER`` seconds ago and still not handled.
- **SIGTERM** stops taking messages; the jobs in hand finish, those fetched and not
  begun go back to the broker. A worker killed outright leaves its job to the resend.
"""

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine, Sequence
from contextlib import suppress
from functools import partial
from typing import Any

import dramatiq
import redis
from anyio import fail_after, to_thread
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, Middleware
{% if cookiecutter.tracing %}
from opentelemetry.trace import SpanKind
{% endif %}
from sqlalchemy.exc import SQLAlchemyError

{% if cookiecutter.tracing %}
from .. import tracing
{% endif %}
from ..db.unit import Database
from ..items.jobs import announce_change
from ..settings import Settings
from . import {{ "metrics, " if cookiecutter.metrics }}outbox
from .handlers import Handler

logger = logging.getLogger(__name__)

# Every handler the worker runs, by name.
HANDLERS: dict[str, Handler] = {handler.name: handler for handler in [announce_change]}
QUEUE = "jobs"
# Jobs the relay sends per unit of work.
RELAY_BATCH = 100
# How often handled jobs past JOBS_KEEP_HANDLED are deleted (seconds).
PURGE_EVERY = 60 * 60


class Runtime(Middleware):
    """A worker process's database and relay, on dramatiq's event loop thread: begun once
    the worker is up, ended once its last job is done."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        self.settings = settings
        self.database = Database(settings)
        self.relaying: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        self.actor = dramatiq.actor(
            actor_name="run_job",
            queue_name=QUEUE,
            broker=broker,
            max_retries=0,  # the outbox retries (see above)
            time_limit=round((settings.jobs_time_limit + 30) * 1000),  # a stuck one's backstop
        )(self.handle)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._on_loop(self.start_relaying())

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._on_loop(self.stop_relaying())

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._on_loop(self.database.dispose())

    def _on_loop(self, coroutine: Coroutine[Any, Any, None]) -> None:
        thread = get_event_loop_thread()
        if thread is None:
            raise RuntimeError("no event loop: the AsyncIO middleware comes before the runtime")
        thread.run_coroutine(coroutine)

    async def start_relaying(self) -> None:
        self.relaying = asyncio.create_task(self.relay())

    async def stop_relaying(self) -> None:
        """Once the relay's unit of work under way has ended: none is cut short, so none
        is left holding its connection (or SQLite's write lock)."""
        self.stopping.set()
        if self.relaying is not None:
            await self.relaying

    async def relay(self) -> None:
        """Send due jobs until stopped; a failure is logged and tried again."""
        database, settings = self.database, self.settings
        due = partial(outbox.due, limit=RELAY_BATCH, resend_after=settings.jobs_resend_after)
        purged_at = 0.0
        while not self.stopping.is_set():
            sent: Sequence[int] = ()
            try:
                async with database.open_session(name="relay") as session:
                    sent = await database.run(session, due)
                    if sent:
                        await to_thread.run_sync(self._send, sent)
                if asyncio.get_running_loop().time() - purged_at > PURGE_EVERY:
                    purged_at = asyncio.get_running_loop().time()
                    await self._purge()
            except (SQLAlchemyError, redis.RedisError, dramatiq.errors.BrokerError) as error:
                logger.warning("Jobs not relayed: %s: %s", type(error).__name__, error)
                sent = ()  # none was: wait before the next try
            if len(sent) < RELAY_BATCH:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), settings.jobs_relay_interval)

    def _send(self, job_ids: Sequence[int]) -> None:
        for job_id in job_ids:
            self.actor.send(job_id)
{% if cookiecutter.metrics %}
        metrics.QUEUED.inc(len(job_ids))
{% endif %}

    async def _purge(self) -> None:
        database, deleted = self.database, RELAY_BATCH
        purge = partial(
            outbox.purge_handled, older_than=self.settings.jobs_keep_handled, limit=RELAY_BATCH
        )
        while deleted == RELAY_BATCH:
            async with database.open_session(name="purge handled jobs") as session:
                deleted = await database.run(session, purge)

    async def handle(self, job_id: int) -> None:
        """Run the job's handler once, unless it was handled already; a failed try is
        counted in the outbox. A failure to reach the database is raised: the job stays
        sent, and is sent again (``JOBS_RESEND_AFTER``).{% if cookiecutter.tracing %} Each try has a span, linked to
        the one that recorded the job.{% endif %}"""
{% if cookiecutter.tracing %}
        attributes = {"job.id": job_id}
        with tracing.tracer.start_as_current_span(
            "job",
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,  # its message may quote a row's values: tracing.failed()
            set_status_on_exception=False,
        ):
            await self._handle(job_id)

    async def _handle(self, job_id: int) -> None:
{% endif %}
        database = self.database
        job: outbox.Claimed | None = None
        try:
            async with database.open_session(name=f"job {job_id}") as session:
                job = await database.run(session, outbox.claim, job_id)
                if job is None:
                    logger.info("Job %d: handled already, or dead; dropped", job_id)
                    return
{% if cookiecutter.tracing %}
                tracing.follows(f"job {job.name}", job.traceparent)
{% endif %}
                handler = HANDLERS.get(job.name)
                if handler is None:
                    raise LookupError(f"no handler is named {job.name!r} (HANDLERS)")
                with fail_after(self.settings.jobs_time_limit):
{% if is_async %}
                    await handler.function(session, job.payload)
{% else %}
                    await database.run(session, handler.function, job.payload)
{% endif %}
        except Exception as error:
{% if cookiecutter.tracing %}
            tracing.failed(error)
{% endif %}
            if job is None:
                raise
            await self._failed(job, error)
            return
{% if cookiecutter.metrics %}
        metrics.HANDLED.inc()
{% endif %}

    async def _failed(self, job: outbox.Claimed, error: Exception) -> None:
        database, settings = self.database, self.settings
        reason = f"{type(error).__name__}: {error}"
        failed = partial(
            outbox.failed, max_attempts=settings.jobs_max_attempts, backoff=settings.jobs_backoff
        )
        async with database.open_session(name=f"job {job.id} failed") as session:
            dead = await database.run(session, failed, job, reason)
        tries = f"try {job.attempts + 1} of {settings.jobs_max_attempts}"
        if dead:
            logger.error(
                "Job %d (%s) is dead, %s failed: %s",
                job.id,
                job.name,
                tries,
                reason,
                exc_info=error,
            )
        else:
            logger.warning(
                "Job %d (%s) failed, %s: %s", job.id, job.name, tries, reason, exc_info=error
            )
{% if cookiecutter.metrics %}
        (metrics.DEAD if dead else metrics.RETRIED).inc()
{% endif %}


def connect(settings: Settings) -> tuple[RedisBroker, Runtime]:
    """The broker, with the runtime and its actor on it."""
    broker = RedisBroker(url=settings.jobs_broker_url, namespace=settings.jobs_namespace)
    runtime = Runtime(settings, broker)
    # Before the runtime: dramatiq calls the "after" hooks last to first, so the loop
    # starts before the runtime's first hook and stops after its last.
    broker.add_middleware(AsyncIO())
    broker.add_middleware(runtime)
    return broker, runtime


def work(settings: Settings) -> None:
    """Run the worker until SIGTERM or SIGINT, then stop it as described above."""
    broker, _ = connect(settings)
{% if cookiecutter.tracing %}
    tracing.configure()  # when OTEL_EXPORTER_OTLP_ENDPOINT is set
{% endif %}
    worker = dramatiq.Worker(broker, worker_threads=settings.jobs_threads)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
{% if cookiecutter.metrics %}
    metrics.serve(settings.jobs_metrics_port)
{% endif %}
    worker.start()
    logger.info("Worker started: %d threads, queue %r", settings.jobs_threads, QUEUE)
    while not stop.wait(1):
        pass
    logger.info("Worker stopping: the jobs in hand finish")
    worker.stop(timeout=round((settings.jobs_time_limit + 30) * 1000))
    broker.close()
