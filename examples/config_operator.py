"""The operator's story: change a setting, watch it spread to another process, roll back.

Two processes share one SQLite config store (swap in the ``postgres`` or ``redis`` adapter to
share it between machines). The follower -- this script started with ``--follow`` -- watches
``app.`` and prints every change set it receives; the operator applies changes, checks the
history and rolls a bad change back.

    python examples/config_operator.py
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from portfolio_core.adapters.sql.config_store import SQLiteConfigStore
from portfolio_core.ports import StaleVersionError


async def follow(path: str) -> None:
    store = SQLiteConfigStore(path, poll_interval=0.05)
    print("follower: watching app.", flush=True)
    async for change_set in store.watch("app.", from_version=0):
        print(
            f"follower: version {change_set.version} {change_set.updates()} "
            f"by {change_set.author or '?'}"
            + (f" (rollback to {change_set.rollback_of})" if change_set.rollback_of else ""),
            flush=True,
        )
        if change_set.rollback_of is not None:
            return


async def operate(path: str, follower: subprocess.Popen[str]) -> None:
    lines = follower.stdout
    if lines is None:
        raise RuntimeError("the follower's output is not piped")
    store = SQLiteConfigStore(path)

    async def heard() -> str:
        line = (await asyncio.to_thread(lines.readline)).rstrip()
        print(f"  {line}")
        return line

    await heard()  # the follower is watching
    v1 = await store.apply(
        {"app.timeout": 5, "app.mode": "safe"}, author="ana", reason="initial settings"
    )
    print(f"operator: applied version {v1}")
    await heard()
    v2 = await store.apply(
        {"app.timeout": 500}, expected_version=v1, author="bo", reason="the db is slow"
    )
    print(f"operator: applied version {v2} (timeout 500: a typo for 50)")
    await heard()
    try:
        await store.apply({"app.mode": "fast"}, expected_version=v1, author="cy")
    except StaleVersionError as exc:
        print(f"operator: cy's change was refused: {exc}")
    print("operator: history")
    for change_set in await store.history():
        print(f"  v{change_set.version} {change_set.author}: {change_set.reason}")
    v3 = await store.rollback(v1, author="ana", reason="undo the 500 s timeout")
    print(f"operator: rolled back to version {v1} as version {v3}")
    await heard()
    print(f"operator: app.timeout is {await store.get('app.timeout')} again")
    await store.aclose()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--follow":
        asyncio.run(follow(sys.argv[2]))
        return
    path = str(Path(tempfile.mkdtemp()) / "config.db")
    follower = subprocess.Popen(  # noqa: S603 - this interpreter running this script
        [sys.executable, __file__, "--follow", path], stdout=subprocess.PIPE, text=True
    )
    try:
        asyncio.run(operate(path, follower))
        follower.wait(10)
    finally:
        follower.kill()


if __name__ == "__main__":
    main()
