"""Durable storage: content-addressed dataset snapshots and checkpoints (fsspec-backed)."""
