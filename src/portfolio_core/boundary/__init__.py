"""What wraps an adapter at the port boundary: telemetry and protection."""
