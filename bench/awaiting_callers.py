"""What callers awaiting many results at once cost their client and Redis (src/redis_io/result_watch.py).

    .venv/bin/python -m bench.awaiting_callers                        # this tree's client
    .venv/bin/python -m bench.awaiting_callers --before /tmp/before   # also an earlier tree's client

For 1, 100 and 500 callers: that many select_channel jobs are enqueued through `src/client.py` into a
queue no worker serves, and each is awaited with `result(timeout=2)`, all at once. Printed: the Redis
commands those 2 s cost (INFO commandstats of the whole server, reset first: run it on a quiet server),
the connections the client opened, the client's CPU time, and how often each job's result key was read.
Each count runs in a process of its own (`--measure N`), which imports only `src.client`: with
`--before DIR` (`git archive COMMIT | tar -x -C DIR`) the same process runs on that tree's client. For
information (no target): the issue asks for speed as callers see it, and a caller that awaits many jobs
should not spend a core doing so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

CALLERS = (1, 100, 500)
WAIT_S = 2.0
ROOT = Path(__file__).resolve().parent.parent


async def measure(redis_url: str, callers: int) -> dict[str, float]:
    """Run in a process of its own, on whichever tree's `src` is first on sys.path."""
    from redis.asyncio import Redis

    from src.client import OutreachClient, ResultTimeout

    admin = Redis.from_url(redis_url)
    await admin.flushdb()
    async with OutreachClient.connect(redis_url) as client:
        jobs = [
            await client.select_channel(tenant_id=uuid.uuid4(), lead_id=uuid.uuid4()) for _ in range(callers)
        ]
        await admin.config_resetstat()
        cpu = time.process_time()
        outcomes = await asyncio.gather(*(job.result(timeout=WAIT_S) for job in jobs), return_exceptions=True)
        cpu = time.process_time() - cpu
    stats = await admin.info("commandstats")
    await admin.flushdb()
    await admin.aclose()
    assert all(isinstance(outcome, ResultTimeout) for outcome in outcomes), outcomes[:3]
    calls = {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}
    reads = calls.get("get", 0) + calls.get("mget", 0)
    # Reads of the jobs' keys: a GET reads one; an MGET reads its chunk of the waiting jobs' keys, at
    # most 500 (result_watch.CHUNK), every job's key once a tick.
    chunks = -(-callers // 500)
    key_reads = calls.get("get", 0) + calls.get("mget", 0) * callers / chunks
    return {
        "commands": float(sum(calls.values())),
        "reads": float(reads),
        "connections": float(calls.get("select", 0)),
        "cpu_s": cpu,
        "read_every_ms": 1000 * WAIT_S / max(1.0, key_reads / callers),
    }


def run_measure(redis_url: str, callers: int, source: Path) -> dict[str, float]:
    script = Path(__file__).resolve()
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, str(script), "--measure", str(callers), "--redis-url", redis_url],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"--measure {callers} in {source} failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _line(name: str, callers: int, f: dict[str, float]) -> str:
    return (
        f"  {name:<10} {callers:4d} callers: {f['commands']:7.0f} Redis commands ({f['reads']:.0f} reads), "
        f"{f['connections']:3.0f} connections opened, client CPU {f['cpu_s']:.2f} s of {WAIT_S:.0f} s, "
        f"each result read every {f['read_every_ms']:.0f} ms"
    )


def main(args: argparse.Namespace) -> int:
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.redis_url, args.measure))))
        return 0
    sys.path.insert(0, str(ROOT))
    from bench.common import Target

    target = Target.from_env()
    url = target.redis_url
    print(f"callers awaiting results at once, {WAIT_S:.0f} s, no worker serving the queue (Redis {url})")
    for callers in CALLERS:
        print(_line("this tree", callers, run_measure(url, callers, ROOT)))
        if args.before is not None:
            print(_line("before", callers, run_measure(url, callers, args.before.resolve())))
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="also an earlier tree's client")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main(parse()))
