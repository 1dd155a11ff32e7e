"""Small helpers several adapter technologies share (not a technology folder itself): codecs,
cache key checks, the quota-counting tenant base, the event store core. Private."""
