"""Running LinkPix as a service: `metrics` (Prometheus figures), `minutes` (the last hour per minute, for the
dashboard's plots), `ratelimit` (per user and per address)."""
