"""``portfolio-core describe FILE``: the resolved wiring and where each value came from.

Secrets print as ``'**********'``. Nothing is built or started.
"""

from __future__ import annotations

import argparse

from portfolio_core._commands._manifest import add_manifest_arguments, overrides_of, report
from portfolio_core.manifest import ManifestError, describe, plan


def configure(parser: argparse.ArgumentParser) -> None:
    add_manifest_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        planned = plan(args.file, profile=args.profile, overrides=overrides_of(args))
    except ManifestError as exc:
        return report(exc)
    print(describe(planned))
    return 0
