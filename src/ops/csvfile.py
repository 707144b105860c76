"""CSV files for the imports: every row with its line number, and one refusal that names every bad line.

An import checks every row before it writes any, and writes all of them in one transaction: a file with a
bad line writes nothing, and the operator learns every bad line at once, not one per attempt.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.ops.services import OpsError

SHOWN_PROBLEMS = 50


def import_parser(actions: Any, what: str, columns: str) -> argparse.ArgumentParser:
    """The `import FILE.csv` subcommand of a command: `what` it records, the `columns` its header names."""
    parser: argparse.ArgumentParser = actions.add_parser(
        "import",
        help=f"record the {what} of a CSV file, all or none",
        description=f"Record the {what} of a CSV file in one transaction. The header names the columns "
        f"{columns}. A bad line is reported with its number, and then nothing is written.",
    )
    parser.add_argument("file", type=Path, metavar="FILE.csv")
    return parser


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # in the file, 1 being the header
    values: dict[str, str]  # column -> value, stripped; a missing optional column is ''


def read_lines(path: Path, *, required: Sequence[str], optional: Sequence[str] = ()) -> list[Line]:
    """The data rows of a CSV file with a header row naming at least the `required` columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or ()]
            _check_header(path, header, required, optional)
            reader.fieldnames = header
            lines = []
            for row in reader:
                values = {name: (row.get(name) or "").strip() for name in (*required, *optional)}
                lines.append(Line(reader.line_num, values))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise OpsError(f"cannot read {path}: {exc}") from None
    if not lines:
        raise OpsError(f"{path} has no rows under its header")
    return lines


def _check_header(path: Path, header: list[str], required: Sequence[str], optional: Sequence[str]) -> None:
    missing = [name for name in required if name not in header]
    unknown = [name for name in header if name not in (*required, *optional)]
    if missing or unknown:
        expected = ", ".join([*required, *(f"[{name}]" for name in optional)])
        raise OpsError(
            f"{path}: the header must name the columns {expected}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
        )


def refuse(path: Path, problems: Sequence[str]) -> None:
    """Raise one OpsError listing the bad lines (`line N: why`), when there are any."""
    if not problems:
        return
    shown = "\n".join(f"  {problem}" for problem in problems[:SHOWN_PROBLEMS])
    more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    raise OpsError(f"{path}: {len(problems)} bad line(s), nothing written:\n{shown}{more}")
