"""YAML manifests: loading, validation, interpolation, secrets and wiring."""
