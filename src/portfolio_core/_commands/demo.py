"""``portfolio-core demo``: run the end-to-end demo application and print its summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".portfolio-core-demo"),
        help="where the cache, the event log and the log file live "
        "(default: .portfolio-core-demo in the current directory)",
    )
    parser.add_argument(
        "--reset", action="store_true", help="delete the state directory first and start over"
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="run another manifest with the same entries (default: the demo's own)",
    )
    parser.add_argument(
        "--model",
        choices=("auto", "real", "random"),
        default="auto",
        help="the local model: SmolLM2-135M-Instruct when installed (auto, the default; "
        "real fails without it) or the tiny random-weight one (random)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="do not show the progress bar on stderr"
    )


def run(args: argparse.Namespace) -> int:
    from portfolio_core.demo._run import render, run_demo
    from portfolio_core.manifest import ManifestError
    from portfolio_core.ports import PortError

    try:
        report = asyncio.run(
            run_demo(
                state_dir=args.state_dir,
                manifest=args.manifest,
                reset=args.reset,
                show_progress=not args.no_progress,
                model=args.model,
            )
        )
    except ManifestError as exc:
        print(str(exc), file=sys.stderr)
        print(
            "hint: the demo needs the 'sql' and 'llm' extras: "
            "pip install 'portfolio-core[sql,llm]'",
            file=sys.stderr,
        )
        return 1
    except (PortError, FileNotFoundError) as exc:
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(render(report))
    return 0
