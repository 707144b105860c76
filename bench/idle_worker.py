"""Redis commands an idle worker process sends: `arq src.worker.Settings` (four queues), nothing queued.

    .venv/bin/python -m bench.idle_worker                          # this tree's worker, 10 s
    .venv/bin/python -m bench.idle_worker --before /tmp/before     # also an earlier tree's worker
    .venv/bin/python -m bench.idle_worker --quick                  # 5 s

Counts, with MONITOR, the commands that reach the benchmark's Redis database over `--seconds` once the
worker is healthy (MONITOR sees the whole server; only the lines of this database are counted, so other
users of the server do not count). For information (the issue asks for a low rate, without a figure).
An idle queue worker waits on its wake-up
channel (src/runtime/wakeup.py) up to IDLE_POLL_S (0.5 s) between two polls; arq's loop polled every
POLL_DELAY_S (0.05 s).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import time
from pathlib import Path

import uvloop

from bench.common import Target, bench_deps, connect, prepare, reset
from bench.through_worker import worker_process
from src.runtime.deps import close_deps
from src.runtime.log import configure_logging

_DB = re.compile(rb"^\S+ \[(\d+) [^\]]*\] \"(\w+)\"")


async def count_commands(target: Target, seconds: float) -> collections.Counter[str]:
    """Commands on the target's database during `seconds`, by name."""
    deps = await bench_deps(target)
    counts: collections.Counter[str] = collections.Counter()
    try:
        async with deps.redis.monitor() as monitor:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    line = await asyncio.wait_for(monitor.connection.read_response(), timeout=left)
                except TimeoutError:
                    break
                match = _DB.match(line if isinstance(line, bytes) else str(line).encode())
                if match and int(match[1]) == target.redis_db:
                    counts[match[2].decode().upper()] += 1
    finally:
        await close_deps(deps)
    return counts


async def measure(target: Target, seconds: float, source: Path | None) -> collections.Counter[str]:
    apg = await connect(target)
    deps = await bench_deps(target)
    try:
        await reset(apg, deps.redis)
    finally:
        await apg.close()
    worker = worker_process(target, "Settings", source=source).start()
    try:
        await worker.wait_healthy(deps.redis, timeout=60)
        await asyncio.sleep(2)  # past start-up
        return await count_commands(target, seconds)
    finally:
        await worker.stop()
        await close_deps(deps)


def _line(name: str, counts: collections.Counter[str], seconds: float) -> str:
    top = ", ".join(f"{command} {n}" for command, n in counts.most_common(5))
    return f"  {name:<28} {sum(counts.values()) / seconds:6.1f} commands/s   ({top})"


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    target = Target.from_env()
    await prepare(target)
    print(f"idle `arq src.worker.Settings`: Redis commands on db {target.redis_db} over {args.seconds:.0f} s")
    counts = await measure(target, args.seconds, None)
    rate = sum(counts.values()) / args.seconds
    if args.before is not None:
        before = await measure(target, args.seconds, args.before)
        print(_line(f"before ({args.before.name})", before, args.seconds))
    print(_line("this tree", counts, args.seconds))
    print(f"  idle worker: {rate:.1f} Redis commands/s (for information)")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="5 s instead of 10")
    parser.add_argument("--before", type=Path, help="also an earlier tree's worker (bench.through_worker)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 5.0)
    return args


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main(parse())))
