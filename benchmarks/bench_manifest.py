"""Load, validate and wire a 20-adapter manifest with a 3-level extends chain and env
interpolation, against OmegaConf loading/merging the same three files and Hydra's
``instantiate`` building the same 20 objects, in the same run.

Ours includes everything ``Registry.from_manifest`` does: YAML with position marks, the
extends chain, interpolation, pydantic validation of every adapter config, port
conformance, dependency ordering and construction. The peer does not validate configs
(Hydra passes kwargs through) and merges the three files with ``OmegaConf.merge`` (the
lightest way to express the chain; Hydra's compose API with a defaults list is slower).

    python benchmarks/bench_manifest.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from portfolio_core.ports import Cache

#: the CI smoke mode: tiny counts that prove the benchmark still runs (figures mean nothing)
SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
N_ADAPTERS = 20
ROUNDS = 2 if SMOKE else 25


class BenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_entries: int = 100
    namespace: str = "n"
    ttl: float = 1.0


class BenchCache:
    """A Cache adapter following the adapter contract (no I/O)."""

    config_model: ClassVar[type[BaseModel]] = BenchConfig

    def __init__(
        self,
        max_entries: int = 100,
        namespace: str = "n",
        ttl: float = 1.0,
        backing: Cache | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.namespace = namespace
        self.ttl = ttl
        self.backing = backing

    @classmethod
    def from_config(cls, config: BenchConfig, *, backing: Cache | None = None) -> Self:
        return cls(config.max_entries, config.namespace, config.ttl, backing)

    async def get(self, key: str) -> Any | None:
        return None

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        return None

    async def delete(self, key: str) -> bool:
        return False

    async def clear(self) -> None:
        return None

    async def exists(self, key: str) -> bool:
        return False

    async def get_many(self, keys: Any) -> dict[str, Any]:
        return {}

    async def put_many(self, items: Any, ttl: float | None = None) -> None:
        return None


def write_files(root: Path) -> tuple[Path, Path]:
    ours = root / "ours"
    peer = root / "peer"
    ours.mkdir()
    peer.mkdir()
    ref = "bench_manifest:BenchCache"
    base = ["adapters:"]
    peer_base = ["adapters:"]
    for i in range(N_ADAPTERS):
        base += [
            f"  c{i}:",
            "    port: cache",
            f"    adapter: {ref}",
            f"    config: {{max_entries: {i + 1}, namespace: c{i}}}",
        ]
        peer_base += [
            f"  c{i}:",
            "    _target_: bench_manifest.BenchCache",
            f"    max_entries: {i + 1}",
            f"    namespace: c{i}",
        ]
        if i:
            base.append(f"    uses: {{backing: c{i - 1}}}")
    (ours / "base.yaml").write_text("\n".join(base) + "\n")
    (peer / "base.yaml").write_text("\n".join(peer_base) + "\n")
    middle = ["extends: base.yaml", "adapters:"]
    peer_middle = ["adapters:"]
    for i in range(0, N_ADAPTERS, 2):
        middle += [f"  c{i}:", "    config: {ttl: 2.5}"]
        peer_middle += [f"  c{i}:", "    ttl: 2.5"]
    (ours / "middle.yaml").write_text("\n".join(middle) + "\n")
    (peer / "middle.yaml").write_text("\n".join(peer_middle) + "\n")
    top = ["schema_version: 1", "extends: middle.yaml", "adapters:"]
    peer_top = ["adapters:"]
    for i in range(N_ADAPTERS):
        top += [f"  c{i}:", f'    config: {{namespace: "${{BENCH_NS:-x}}-{i}"}}']
        peer_top += [f"  c{i}:", f'    namespace: "${{oc.env:BENCH_NS,x}}-{i}"']
    (ours / "app.yaml").write_text("\n".join(top) + "\n")
    (peer / "app.yaml").write_text("\n".join(peer_top) + "\n")
    return ours / "app.yaml", peer


def ours_once(path: Path) -> object:
    from portfolio_core.registry import Registry

    registry = Registry.from_manifest(path)
    registry._closed = True  # nothing to close: no adapter has start/close
    return registry


def peer_once(folder: Path) -> object:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(
        OmegaConf.load(folder / "base.yaml"),
        OmegaConf.load(folder / "middle.yaml"),
        OmegaConf.load(folder / "app.yaml"),
    )
    built: dict[str, object] = {}
    for i in range(N_ADAPTERS):
        node = cfg.adapters[f"c{i}"]
        kwargs = {"backing": built[f"c{i - 1}"]} if i else {}
        built[f"c{i}"] = instantiate(node, **kwargs)
    return built


def median_seconds(fn: Any, arg: Any) -> float:
    fn(arg)  # warm imports and caches
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn(arg)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ["BENCH_NS"] = "bench"
    with tempfile.TemporaryDirectory() as tmp:
        ours_path, peer_folder = write_files(Path(tmp))
        registry = ours_once(ours_path)
        from portfolio_core.ports import Cache as CachePort

        assert registry.get(CachePort, "c19").namespace == "bench-19"  # type: ignore[attr-defined]
        built = peer_once(peer_folder)
        assert built["c19"].namespace == "bench-19"  # type: ignore[index, attr-defined]
        ours = median_seconds(ours_once, ours_path) * 1000
        peer = median_seconds(peer_once, peer_folder) * 1000
    print(f"{'':<44}{'median ms':>12}")
    print(f"{'portfolio-core Registry.from_manifest':<44}{ours:>12.2f}")
    print(f"{'OmegaConf merge + hydra instantiate':<44}{peer:>12.2f}")
    ratio = peer / ours
    print(
        json.dumps(
            {
                "benchmark": "manifest load+validate+wire, 20 adapters, 3-level extends, env",
                "ours": round(ours, 3),
                "peer": round(peer, 3),
                "unit": "ms",
                "ratio": round(ratio, 2),
                "goal": ">= 4x faster than Hydra/OmegaConf",
                "met": ratio >= 4,
            }
        )
    )


if __name__ == "__main__":
    main()
