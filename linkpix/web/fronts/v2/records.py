"""What the Comfy API v2 front keeps beside LinkPix's own jobs: claimed idempotency keys, the labels
(`metadata`) of each v2 job, and asset records (an uploaded input image under a v2 asset id).

A v2 job *is* a LinkPix job (jobs/manager.py runs, persists and re-attaches it); these records only hold
what the contract adds. They must outlive a restart and be shared by replicas, so there are two stores
with one interface: SQLite in the data folder (`sqlite_records.py`) and Redis with `redis_url`
(`redis_records.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

IDEMPOTENCY_DAYS = 1.0  # a claimed key is refused for this long (the contract: keys expire after 24 h)


@dataclass
class AssetRecord:
    """One v2 asset: a caller's name for bytes held in the upload store (`upload` is its content name)."""

    id: str
    user: str
    hash: str  # blake3:<hex>
    upload: str  # linkpix_<sha>.<ext> in the upload store
    size_bytes: int
    content_type: str
    file_path: str | None
    created: float
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JobRecord:
    """A job submitted through v2: whose it is, when, and its labels."""

    id: str
    user: str
    created: float
    metadata: dict[str, str] = field(default_factory=dict)


class V2Records(Protocol):
    """The v2 front's durable state (see the module docstring)."""

    def claim_key(self, user: str, key: str, fingerprint: str) -> bool:
        """Claim an Idempotency-Key for `user`; False when it was claimed before (by any replica)."""
        ...

    def release_key(self, user: str, key: str) -> None:
        """Give a key back after a submission that certainly created no job."""
        ...

    def add_job(self, record: JobRecord) -> None: ...

    def job(self, job_id: str) -> JobRecord | None: ...

    def jobs(self, user: str | None, before: tuple[float, str] | None, limit: int) -> list[JobRecord]:
        """The user's v2 jobs (every user's with None: an admin key), newest first, strictly older than
        `before` (created, id) when given."""
        ...

    def prune_jobs(self, user: str, before: float) -> int:
        """Forget the user's v2 job records created before `before` (their jobs are long pruned)."""
        ...

    def add_asset(self, record: AssetRecord) -> AssetRecord:
        """Keep a record; when the user already has one with the same hash, that one (nothing added)."""
        ...

    def asset(self, asset_id: str) -> AssetRecord | None: ...

    def asset_by_hash(self, user: str, digest: str) -> AssetRecord | None: ...

    def delete_asset(self, asset_id: str) -> bool: ...

    def close(self) -> None: ...
