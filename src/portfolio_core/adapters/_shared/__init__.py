"""Small helpers several adapter technologies share (not a technology folder)."""
