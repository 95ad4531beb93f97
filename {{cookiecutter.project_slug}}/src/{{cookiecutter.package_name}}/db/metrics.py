"""The connection pool's state, as Prometheus gauges summed over the worker processes.

``Database`` keeps them current: it updates them whenever a unit of work
takes or gives back a connection, and counts the units of work queued for one.
"""

from prometheus_client import Gauge
from sqlalchemy.pool import Pool, QueuePool

# In a multi-process server each worker writes its own values; a scrape sums
# those of the workers still running.
POOL_SIZE = Gauge(
    "db_pool_size", "Connections the pool keeps open (DB_POOL_SIZE)", multiprocess_mode="livesum"
)
POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out", "Connections lent to a unit of work", multiprocess_mode="livesum"
)
POOL_OVERFLOW = Gauge(
    "db_pool_overflow",
    "Connections open beyond DB_POOL_SIZE (at most DB_MAX_OVERFLOW)",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "db_pool_waiting",
    "Units of work waiting for a free connection (for at most DB_POOL_TIMEOUT)",
    multiprocess_mode="livesum",
)


def observe_pool(pool: Pool) -> None:
    """Set the gauges from ``pool``, as it is now."""
    if isinstance(pool, QueuePool):
        POOL_SIZE.set(pool.size())
        POOL_CHECKED_OUT.set(pool.checkedout())
        POOL_OVERFLOW.set(max(0, pool.overflow()))
