"""The worker's metrics, served by the worker itself on ``JOBS_METRICS_PORT`` (a
Prometheus target of its own, as each worker process is)."""

from prometheus_client import Counter, start_http_server

QUEUED = Counter("jobs_queued", "Jobs the relay handed to the broker, again ones included")
HANDLED = Counter("jobs_handled", "Jobs handled: their effects committed")
RETRIED = Counter("jobs_retried", "Failed tries of jobs that are due again")
DEAD = Counter("jobs_dead", "Jobs dead after their last try")


def serve(port: int) -> None:
    start_http_server(port)
