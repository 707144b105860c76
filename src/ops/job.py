"""`job ID`: where a job is and what it returned."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from src.config import Config
from src.contracts import DispatchResult
from src.ops import dispatch_view
from src.ops.render import print_json
from src.ops.services import OpsError, redis_client


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "job",
        help="status and result of a job",
        description="Status (deferred, queued, in_progress, complete) and stored result of one job.",
    )
    parser.add_argument("job_id", metavar="JOB_ID")
    parser.add_argument(
        "--queue", help="the queue to look on, e.g. q:wa:phone_01 (default: the four job queues)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, config: Config) -> int:
    async with redis_client(config) as client:
        state = await client.job_state(args.job_id, args.queue)
    if args.json:
        print_json(
            {
                "jobId": state.job_id,
                "queue": state.queue or None,
                "status": state.status,
                "function": state.function,
                "jobTry": state.job_try,
                "success": state.success,
                "result": state.result,
            }
        )
        return 1 if state.status == "not_found" else 0
    if state.status == "not_found":
        where = args.queue or "the four job queues"
        raise OpsError(
            f"job {args.job_id} not found on {where} (results are kept KEEP_RESULT_S seconds; "
            "an output-queue job needs --queue)"
        )
    print(f"job {state.job_id}: {state.status}")
    print(f"  queue: {state.queue}")
    print(f"  function: {state.function or '-'}   try: {state.job_try or '-'}")
    if state.success is not None:
        print(f"  success: {'yes' if state.success else 'no'}")
        print(_result_text(state.function, state.result))
    return 0


def _result_text(function: str | None, result: Any) -> str:
    if function == "dispatch" and isinstance(result, dict):
        try:
            return dispatch_view.render(DispatchResult.model_validate(result))
        except ValueError:
            pass
    return "  result: " + orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str).decode()
