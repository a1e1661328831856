"""`python -m tasks.health`: exit 0 when the worker's heartbeat file is fresh, 1 when not.

The liveness probe of a worker pod runs this instead of a broker round-trip per probe.
"""

from __future__ import annotations

import sys
import time

from tasks.signals import heartbeat_file

MAX_AGE = 60


def main(argv: list[str] | None = None) -> int:
    """Check the heartbeat's age against MAX_AGE seconds (or the first argument)."""
    args = sys.argv[1:] if argv is None else argv
    max_age = float(args[0]) if args else MAX_AGE
    path = heartbeat_file()
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        print(f"unhealthy: no heartbeat file at {path}")
        return 1
    if age > max_age:
        print(f"unhealthy: last heartbeat {age:.0f} s ago (limit {max_age:.0f} s)")
        return 1
    print(f"healthy: last heartbeat {age:.0f} s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
