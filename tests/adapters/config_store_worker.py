"""A process that applies batches to a file or SQLite config store until it is killed.

Run as ``python -m tests.adapters.config_store_worker KIND PATH``; prints the number of
every batch whose apply returned (one line each), so the test knows what was acknowledged.
"""

from __future__ import annotations

import asyncio
import sys

from portfolio_core.ports import ConfigStore

KEYS = 40


async def main(kind: str, path: str) -> None:
    store: ConfigStore
    if kind == "file":
        from portfolio_core.adapters.file.config_store import FileConfigStore

        store = FileConfigStore(path)
    else:
        from portfolio_core.adapters.sql.config_store import SQLiteConfigStore

        store = SQLiteConfigStore(path)
    n = await store.current_version()
    filler = "x" * 2000  # big records: a kill is likely to land inside a write
    while True:
        n += 1
        await store.apply({f"k{i}": [n, filler] for i in range(KEYS)}, reason=f"batch {n}")
        print(n, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
