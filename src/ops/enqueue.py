"""`enqueue JOB`: put one of the four jobs on its queue through src.client, optionally wait for it."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from pydantic import BaseModel

from src.client import EnqueuedJob, JobFailed, OutreachClient, ResultTimeout
from src.config import Config
from src.contracts import (
    MAX_BATCH_SIZE,
    ChannelPreference,
    DispatchResult,
    MessageType,
    Priority,
)
from src.errors import InvalidJobInput
from src.ops import argtypes, dispatch_view
from src.ops.render import print_json
from src.ops.services import OpsError, UsageError, redis_client

_PREFERENCES = [p.value for p in ChannelPreference]


def add_parser(commands: Any) -> None:
    enqueue = commands.add_parser(
        "enqueue",
        help="enqueue dispatch, route, allocate or select; --wait prints the result",
        description="Enqueue one job. Input is validated before anything reaches Redis.",
    )
    jobs = enqueue.add_subparsers(dest="job", required=True, metavar="JOB")

    dispatch = _job_parser(jobs, "dispatch", "a tenant's due leads to their channels (DispatchJobData)")
    dispatch.add_argument(
        "--tenant-id", required=True, type=argtypes.tenant_selector, help="tenant UUID, or ALL"
    )
    dispatch.add_argument(
        "--batch-size",
        type=argtypes.int_between(1, MAX_BATCH_SIZE),
        help=f"leads per batch, 1..{MAX_BATCH_SIZE} (job default 100)",
    )
    dispatch.add_argument("--channel-preference", choices=_PREFERENCES, help="default AUTO")
    dispatch.add_argument("--priority-filter", choices=[p.value for p in Priority])
    dispatch.add_argument("--sequence-filter", metavar="SEQUENCE_ID")
    dispatch.add_argument("--dry-run", action="store_true", help="return the plan, change nothing")

    route = _job_parser(jobs, "route", "one message to its phone's queue (RouterJobData)")
    route.add_argument(
        "--tenant-id", type=argtypes.uuid, help="optional: checked against the lead's and the phone's tenant"
    )
    route.add_argument("--lead-id", required=True, type=argtypes.uuid)
    route.add_argument("--phone-id", required=True, type=argtypes.uuid)
    route.add_argument("--message-type", required=True, choices=[m.value for m in MessageType])
    route.add_argument(
        "--payload",
        required=True,
        type=argtypes.json_object,
        help='JSON object, e.g. \'{"text": "Bună ziua"}\' (at most MAX_PAYLOAD_BYTES as JSON)',
    )
    route.add_argument(
        "--send-now",
        action="store_true",
        help="a reply to the lead's own message: send even outside the tenant's sending window",
    )

    allocate = _job_parser(jobs, "allocate", "a phone for a lead (PhoneAllocationJobData)")
    _lead_arguments(allocate)
    allocate.add_argument(
        "--prefer-existing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the lead's sticky phone when it is available (default: yes)",
    )

    select = _job_parser(jobs, "select", "the channel for a lead (ChannelSelectionJobData)")
    _lead_arguments(select)
    select.add_argument("--preferred-channel", choices=_PREFERENCES, default="AUTO")


def _job_parser(jobs: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = jobs.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--correlation-id", help="carried into every log line of the job")
    parser.add_argument("--job-id", help="idempotency key: a job with a live id is not enqueued twice")
    parser.add_argument("--wait", action="store_true", help="wait for the result and print it")
    parser.add_argument(
        "--timeout", type=argtypes.positive_seconds, default=60.0, help="seconds --wait waits (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)
    return parser


def _lead_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant-id", required=True, type=argtypes.uuid)
    parser.add_argument("--lead-id", required=True, type=argtypes.uuid)


# Per job: the client's method, and the options of its subcommand passed on to it under the same names.
_JOB_OPTIONS = {
    "dispatch": (
        "dispatch",
        ("batch_size", "channel_preference", "priority_filter", "sequence_filter", "dry_run"),
    ),
    "route": ("route", ("lead_id", "phone_id", "message_type", "payload", "send_now")),
    "allocate": ("allocate_phone", ("lead_id", "prefer_existing")),
    "select": ("select_channel", ("lead_id", "preferred_channel")),
}


async def _enqueue(client: OutreachClient, args: argparse.Namespace) -> EnqueuedJob[Any]:
    method, options = _JOB_OPTIONS[args.job]
    given = {name: getattr(args, name) for name in options}
    if "dry_run" in given:
        given["dry_run"] = given["dry_run"] or None  # absent, not false: the job's default applies
    enqueue = getattr(client, method)
    job: EnqueuedJob[Any] = await enqueue(
        tenant_id=args.tenant_id, correlation_id=args.correlation_id, job_id=args.job_id, **given
    )
    return job


async def run(args: argparse.Namespace, config: Config) -> int:
    async with redis_client(config) as client:
        try:
            job = await _enqueue(client, args)
        except InvalidJobInput as exc:
            raise UsageError(str(exc)) from None
        meta = {
            "jobId": job.job_id,
            "queue": job.queue,
            "function": job.function.value,
            "created": job.created,
        }
        if not args.wait:
            if args.json:
                print_json(meta)
            elif job.created:
                print(f"enqueued {job.function.value} job {job.job_id} on {job.queue}")
            else:
                print(f"job {job.job_id} already exists on {job.queue}: nothing enqueued")
            return 0
        try:
            result = await job.result(timeout=args.timeout)
        except ResultTimeout:
            raise OpsError(
                f"job {job.job_id} has no result after {args.timeout:g}s: is a worker serving {job.queue}? "
                "(`cerniq-ops status` shows the workers)"
            ) from None
        except JobFailed as failed:
            if args.json:
                print_json({**meta, "success": False, "error": failed.error})
                return 1
            raise OpsError(str(failed)) from None
    if args.json:
        print_json({**meta, "success": True, "result": result.model_dump(mode="json", by_alias=True)})
    else:
        print(f"{job.function.value} job {job.job_id} on {job.queue}: done")
        print(describe(result))
    return 0


def describe(result: BaseModel) -> str:
    if isinstance(result, DispatchResult):
        return dispatch_view.render(result)
    return "\n".join(
        f"  {key}: {orjson.dumps(value).decode() if isinstance(value, dict | list) else value}"
        for key, value in result.model_dump(mode="json", by_alias=True).items()
    )
