"""The numpy backend with GGUF weights: loading, the forward pass, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
from portfolio_core.ports import InvalidInputError, NotFoundError
from tests.support.gguf_files import TINY, reference_logits, write_tiny_llama

pytest.importorskip("gguf", reason="GGUF weights need the gguf package (the llm extra)")

TOKENS = [3, 17, 5, 39, 0, 22, 8, 8, 31, 12, 1]


@pytest.mark.parametrize("tensor_type", ["F32", "F16", "Q8_0", "Q4_0", "Q4_1"])
def test_forward_pass_matches_llama_layout_reference(tmp_path: Path, tensor_type: str) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf", tensor_type=tensor_type)
    model = NumpyModelBackend(weights=str(path))
    ours = model.reference_logits(TOKENS)
    expected = reference_logits(path, TOKENS)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_untied_output_matrix_is_used(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf", tied=False)
    ours = NumpyModelBackend(weights=str(path)).reference_logits(TOKENS)
    np.testing.assert_allclose(ours, reference_logits(path, TOKENS), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_matrices_are_stored_for_batched_products_and_a_tied_matrix_once(
    tmp_path: Path, tied: bool
) -> None:
    """Every matrix is (in, out) and C-contiguous, the layout in which a product of a few
    rows (batched decode) is fastest; a tied output matrix is not copied for the embedding."""
    model = NumpyModelBackend(weights=str(write_tiny_llama(tmp_path / "m.gguf", tied=tied)))
    matrices = [w for layer in model._layers for w in layer if w.ndim == 2]
    assert len(matrices) == 4 * model.config.n_layers
    assert all(w.flags.c_contiguous for w in [*matrices, model._lm_head])
    assert model._lm_head.shape == (model.config.d_model, model.config.vocab_size)
    assert np.shares_memory(model._embed, model._lm_head) == tied


def test_cached_and_paged_paths_agree_with_full_recomputation(tmp_path: Path) -> None:
    model = NumpyModelBackend(weights=str(write_tiny_llama(tmp_path / "m.gguf")))
    full = model.reference_logits(TOKENS)
    generation = model.generate(TOKENS[:-1], max_tokens=1)
    assert generation.tokens == (int(np.argmax(full[-2])),)
    kv = model.allocate_kv_cache(4, 8)
    from portfolio_core.ports import ForwardSequence

    logits = model.forward(kv, [ForwardSequence(tuple(TOKENS), 0, (2, 0))])
    np.testing.assert_allclose(logits[0], full[-1], rtol=1e-4, atol=1e-4)


def test_model_spec_comes_from_the_file(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "a.gguf")
    spec = NumpyModelBackend(weights=str(path)).extract_model_spec()
    assert spec.n_layers == TINY["n_layers"]
    assert spec.n_kv_heads == TINY["n_kv_heads"]
    assert spec.head_dim == TINY["d_model"] // TINY["n_heads"]
    assert spec.vocab_size == TINY["vocab_size"]
    assert spec.max_seq_len == TINY["context_length"]  # capped at the file's context
    assert spec.model_id.startswith("gguf:tiny-F32-0:")
    same = NumpyModelBackend(weights=str(path)).extract_model_spec()
    other = write_tiny_llama(tmp_path / "b.gguf", seed=1)
    assert same.spec_hash == spec.spec_hash
    assert NumpyModelBackend(weights=str(other)).extract_model_spec().spec_hash != spec.spec_hash


def test_a_cache_from_another_file_is_refused(tmp_path: Path) -> None:
    a = NumpyModelBackend(weights=str(write_tiny_llama(tmp_path / "a.gguf")))
    b = NumpyModelBackend(weights=str(write_tiny_llama(tmp_path / "b.gguf", seed=2)))
    cache = a.generate(TOKENS, max_tokens=2).cache
    with pytest.raises(InvalidInputError, match="another model"):
        b.generate(TOKENS, cache)


def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf", architecture="falcon")
    with pytest.raises(InvalidInputError, match="architecture 'falcon' is not supported"):
        NumpyModelBackend(weights=str(path))


def test_unsupported_tensor_type_is_named(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf", tensor_type="Q5_0")
    with pytest.raises(InvalidInputError, match=r"'token_embd.weight' has type Q5_0") as caught:
        NumpyModelBackend(weights=str(path))
    assert caught.value.field == "weights"


def test_shape_fields_cannot_be_set_with_weights(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf")
    with pytest.raises(InvalidInputError, match="n_layers cannot be set with weights"):
        NumpyModelBackend(weights=str(path), n_layers=3)


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"not a model at all")
    with pytest.raises(InvalidInputError, match="not a readable GGUF file"):
        NumpyModelBackend(weights=str(path))


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "m.gguf")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InvalidInputError, match="not a readable GGUF file"):
        NumpyModelBackend(weights=str(path))


def test_missing_files_and_packages_are_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no weights file"):
        NumpyModelBackend(weights=str(tmp_path / "absent.gguf"))
    with pytest.raises(NotFoundError, match="'no_such_model_package' is not installed"):
        NumpyModelBackend(weights="package:no_such_model_package/model.gguf")
    with pytest.raises(NotFoundError, match=r"has no file 'absent\.gguf'"):
        NumpyModelBackend(weights="package:pytest/absent.gguf")
    with pytest.raises(InvalidInputError, match="package:<package>/<file>"):
        NumpyModelBackend(weights="package:pytest")
