"""Adapters that reach a service over HTTP (httpx): OpenAI-compatible LLM endpoints."""
