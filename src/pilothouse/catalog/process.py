"""Process and Python runtime metrics.

These families are produced by prometheus_client's ProcessCollector, PlatformCollector and
GCCollector (registered by `pilothouse.telemetry`), not created from these specs; they are
declared here so dashboards and alerts can be generated from the catalog like every other
metric. A test asserts each one is present in a real scrape.
"""

from pilothouse.catalog.spec import MetricSpec

PROCESS_CPU_SECONDS = MetricSpec(
    name="process_cpu_seconds",
    type="counter",
    help="Total user and system CPU time spent in seconds.",
    unit="seconds",
)
PROCESS_RESIDENT_MEMORY = MetricSpec(
    name="process_resident_memory_bytes",
    type="gauge",
    help="Resident memory size in bytes.",
    unit="bytes",
)
PROCESS_VIRTUAL_MEMORY = MetricSpec(
    name="process_virtual_memory_bytes",
    type="gauge",
    help="Virtual memory size in bytes.",
    unit="bytes",
)
PROCESS_START_TIME = MetricSpec(
    name="process_start_time_seconds",
    type="gauge",
    help="Start time of the process since unix epoch in seconds.",
    unit="seconds",
)
PROCESS_OPEN_FDS = MetricSpec(
    name="process_open_fds",
    type="gauge",
    help="Number of open file descriptors.",
    unit="descriptors",
)
PROCESS_MAX_FDS = MetricSpec(
    name="process_max_fds",
    type="gauge",
    help="Maximum number of open file descriptors.",
    unit="descriptors",
)
PYTHON_GC_COLLECTIONS = MetricSpec(
    name="python_gc_collections",
    type="counter",
    help="Number of times this generation was collected.",
    labels=("generation",),
    unit="collections",
)
PYTHON_INFO = MetricSpec(
    name="python",
    type="info",
    help="Python platform information.",
    labels=("implementation", "major", "minor", "patchlevel", "version"),
)

SPECS = (
    PROCESS_CPU_SECONDS,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_VIRTUAL_MEMORY,
    PROCESS_START_TIME,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PYTHON_GC_COLLECTIONS,
    PYTHON_INFO,
)
