"""The local adapters are registered under their ports' entry-point groups and wire by config."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from pydantic import BaseModel, ValidationError

from portfolio_core.ports import GenerationEngine, ModelBackend, Tokenizer

EXPECTED = {
    "tokenizer": {"byte", "huggingface"},
    "model_backend": {"numpy", "scripted"},
    "generation_engine": {"local"},
}


@pytest.mark.parametrize("port", sorted(EXPECTED))
def test_registered(port: str) -> None:
    found = {ep.name: ep for ep in entry_points(group=f"portfolio_core.adapters.{port}")}
    assert EXPECTED[port] <= set(found)
    for name in EXPECTED[port]:
        cls = found[name].load()
        assert issubclass(cls.config_model, BaseModel)
        assert callable(cls.from_config)
        with pytest.raises(ValidationError):
            cls.config_model.model_validate({"no_such_field": 1})


def test_wire_an_engine_from_configs() -> None:
    def load(port: str, name: str) -> type:
        (ep,) = (e for e in entry_points(group=f"portfolio_core.adapters.{port}") if e.name == name)
        cls: type = ep.load()
        return cls

    tok_cls = load("tokenizer", "byte")
    backend_cls = load("model_backend", "numpy")
    engine_cls = load("generation_engine", "local")
    tokenizer = tok_cls.from_config(tok_cls.config_model())  # type: ignore[attr-defined]
    backend = backend_cls.from_config(backend_cls.config_model(n_layers=1))  # type: ignore[attr-defined]
    engine = engine_cls.from_config(  # type: ignore[attr-defined]
        engine_cls.config_model(num_blocks=16), backend=backend, tokenizer=tokenizer
    )
    assert isinstance(tokenizer, Tokenizer)
    assert isinstance(backend, ModelBackend)
    assert isinstance(engine, GenerationEngine)
    uid = engine.submit("a", "hi", max_tokens=2)
    while engine.has_unfinished():
        for done in engine.step():
            assert done.uid == uid
            assert done.token_count <= 2
