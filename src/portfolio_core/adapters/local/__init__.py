"""In-process inference: tokenizers, the numpy model backend, the batching engine."""
