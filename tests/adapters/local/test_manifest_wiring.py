"""A manifest wires the local engine over a model backend and a tokenizer by ``uses``."""

from __future__ import annotations

from pathlib import Path

from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
from portfolio_core.manifest import load

MANIFEST = """\
schema_version: 1
adapters:
  tok:
    port: tokenizer
    adapter: byte
  model:
    port: model_backend
    adapter: numpy
    config: { n_layers: 1, seed: 3 }
  engine:
    port: generation_engine
    adapter: local
    config: { num_blocks: 32, block_size: 16 }
    uses: { backend: model, tokenizer: tok }
"""


def test_manifest_wires_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(MANIFEST)
    wiring = load(path, environ={})
    engine = wiring.entries["engine"].instance
    assert isinstance(engine, LocalGenerationEngine)
    assert isinstance(wiring.entries["model"].instance, NumpyModelBackend)
    assert engine.num_blocks == 32
    uid = engine.submit("agent", "hello", max_tokens=3)
    done = []
    while engine.has_unfinished():
        done.extend(engine.step())
    assert [c.uid for c in done] == [uid]
