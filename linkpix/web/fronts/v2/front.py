"""The v2 front's logic between the routes and LinkPix's jobs manager: submit, read, list, cancel.

A v2 job is submitted to the same `JobManager` as `POST /generate` (so it is persisted, capped per user,
re-attached after a restart, and run by the same generator: the cache, single-flight and the pool's
choice of backend apply). What the contract adds - labels, idempotency keys - is in `V2Records`.
"""

from __future__ import annotations

import time
from typing import Any

from linkpix.comfy.pool import ModelMissing
from linkpix.errors import BadRequest, NotFound
from linkpix.jobs.manager import Conflict, JobManager
from linkpix.jobs.store import RUNNING, Job
from linkpix.pipeline.graphjob import job_from_graph
from linkpix.pipeline.request import InputImage
from linkpix.pipeline.resolver import RenderedJob
from linkpix.pipeline.secrets import scope_graph, scope_of
from linkpix.storage.media import keep_input
from linkpix.storage.uploads import Uploads
from linkpix.web.fronts.v2 import graph as graphs
from linkpix.web.fronts.v2 import rules, shapes
from linkpix.web.fronts.v2.canceling import Cancellations
from linkpix.web.fronts.v2.errors import V2Error, not_found
from linkpix.web.fronts.v2.records import AssetRecord, JobRecord, V2Records
from linkpix.web.services import Services

SCAN_LIMIT = 500  # records read at most for one filtered list page
PRUNE_EVERY = 3600.0  # s between prunings of one user's old job records


class V2Front:
    """One per app: the records store plus the services it translates onto."""

    def __init__(self, svc: Services, records: V2Records) -> None:
        self.svc = svc
        self.records = records
        self._pruned: dict[str, float] = {}  # user -> when its old records were last pruned
        self.cancellations = Cancellations(svc.pool.client)

    @property
    def manager(self) -> JobManager:
        if self.svc.jobs is None:
            raise V2Error(503, "upstream_unreachable", "the jobs API, which v2 jobs run on, is not enabled")
        return self.svc.jobs

    @property
    def uploads(self) -> Uploads:
        """The upload service: where an asset's bytes live (content-addressed, shared with /uploads)."""
        return self.svc.uploads

    @property
    def keep_days(self) -> float:
        return self.svc.config.settings.jobs_keep_days

    # -- submitting --------------------------------------------------------------------------------
    def prepare(self, user: str, sub: rules.Submission) -> RenderedJob:
        """The runnable job of a submission, or the contract's refusal; nothing is kept yet."""
        workflow = graphs.check_format(sub.workflow)
        resolved, images = graphs.resolve_assets(workflow, lambda aid: self.own_asset(user, aid), self._image_of)
        graphs.check_nodes(resolved, None)  # the shape first: check_models reads node inputs
        try:  # a model file first: the pool looks again at backends that may have gained it meanwhile
            self.svc.pool.check_models(resolved)
        except ModelMissing as exc:
            node, field = str(exc.details.get("node")), exc.details.get("input") or "model"
            raise V2Error(422, "invalid_workflow", exc.message, {
                "node_errors": {node: [{"field": field, "reason": "value_not_in_list", "value": exc.details.get(
                    "missing"), "allowed": exc.details.get("allowed")}]}, **exc.details}) from None
        info = self._object_info()
        graphs.check_nodes(resolved, info)
        if sub.partner_key is not None:  # a run of its own, never shared nor cached for others (secrets.py)
            resolved, _ = scope_graph(resolved, info)
        return job_from_graph(resolved, images)

    def submit(self, user: str, rendered: RenderedJob, sub: rules.Submission, key: str | None,
               base_url: str) -> Job:
        if key is not None and not self.records.claim_key(user, key, sub.fingerprint):
            raise V2Error(422, "idempotency_key_reuse", "This Idempotency-Key has already been used. Keys are "
                          "single-use; poll or list your jobs instead of resubmitting with the same key.")
        hit = self.svc.cache.get(user, self.svc.generator.key_for(rendered)) is not None
        scope = scope_of(rendered.graph) if sub.partner_key is not None else None
        if scope is not None and sub.partner_key is not None:  # in memory until the run ends, nowhere else
            self.svc.generator.secrets.put(scope, sub.partner_key)
        try:  # a workflow the cache answers runs now, in this thread, not behind runs in the job pool
            job = self.manager.submit(user, [rendered], None, None, base_url, here=hit)
        except BaseException:
            if scope is not None:
                self.svc.generator.secrets.drop(rendered.graph)
            if key is not None:
                self.records.release_key(user, key)  # refused (queue_full...): no job exists under it
            raise
        self.records.add_job(JobRecord(job.id, user, job.created, sub.metadata))
        self._prune(user)
        return job

    def _prune(self, user: str) -> None:
        """A record outlives its job (which then reads `expired`) by one retention period; checked at most
        hourly per user, so a submit does not pay for a DELETE each time."""
        now = time.time()
        if self.keep_days <= 0 or now - self._pruned.get(user, 0.0) < PRUNE_EVERY:
            return
        self._pruned[user] = now
        self.records.prune_jobs(user, now - 2 * self.keep_days * 86400)

    # -- reading -----------------------------------------------------------------------------------
    def record(self, user: str, job_id: str, admin: bool = False) -> JobRecord:
        """The caller's job record (any user's for an admin key); 404 alike for another's and a missing one."""
        record = self.records.job(job_id)
        if record is None or (record.user != user and not admin):
            raise not_found(f"job {job_id}")
        return record

    def job_of(self, record: JobRecord) -> Job | None:
        """The LinkPix job behind a record; None once retention pruned it (the contract's `expired`)."""
        try:
            return self.manager.store.get(record.id)
        except NotFound:
            return None

    def body(self, base: str, record: JobRecord, job: Job | None = None, *, fetch: bool = True) -> dict[str, Any]:
        if job is None and fetch:
            job = self.job_of(record)
        described = self.manager.describe(job) if job is not None else None
        sizes = [self._size(ref) for ref in shapes.output_refs(job)] if job is not None else []
        return shapes.job_body(base, record, job, described, sizes, self.keep_days,
                               canceling=job is not None and self.cancellations.stopping(job.id))

    def _size(self, image: dict[str, Any]) -> int:
        try:
            return self.output_image(image).size
        except NotFound:
            return 0

    def output_image(self, image: dict[str, Any]) -> Any:
        """The cached image of one of a job's outputs (`shapes.output_refs`; NotFound once evicted)."""
        _, _, owner, filename = str(image.get("url", "")).rsplit("/", 3)
        return self.svc.cache.lookup_file(owner, filename)

    def list(self, base: str, user: str, query: rules.ListQuery, admin: bool = False) -> dict[str, Any]:
        """The caller's jobs; an admin key's: every user's, or those of `query.user` when it names one."""
        owner: str | None = user if not admin else query.user
        items: list[dict[str, Any]] = []
        before, scanned, last = query.before, 0, None
        while len(items) < query.limit and scanned < SCAN_LIMIT:
            batch = self.records.jobs(owner, before, min(100, SCAN_LIMIT - scanned))
            if not batch:
                last = None
                break
            for record in batch:
                scanned += 1
                before = last = (record.created, record.id)
                if any(record.metadata.get(k) != v for k, v in query.labels.items()):
                    continue
                job = self.job_of(record)
                canceling = job is not None and self.cancellations.stopping(job.id)
                if query.statuses is not None and shapes.status_of(job, canceling) not in query.statuses:
                    continue
                items.append(shapes.list_item(base, record, job, canceling) | ({"user": record.user} if admin else {}))
                if len(items) >= query.limit:
                    break
        body: dict[str, Any] = {"jobs": items}
        if last is not None and (len(items) >= query.limit or scanned >= SCAN_LIMIT) \
                and self.records.jobs(owner, last, 1):
            body["next_cursor"] = rules.make_cursor(*last)
        return body

    def cancel(self, user: str, job_id: str, admin: bool = False) -> tuple[JobRecord, Job | None]:
        record = self.record(user, job_id, admin)
        job = self.job_of(record)
        if job is not None:
            try:
                self.manager.cancel(job_id)
            except Conflict:
                pass  # already ended: cancelling is idempotent in the contract, the job is returned as it is
            else:
                if job.state == RUNNING:  # its prompt may run on until ComfyUI acts on the stop: `canceling`
                    self.cancellations.note(job_id, job.backend, job.prompt_id)
        return record, self.job_of(record)

    # -- assets ------------------------------------------------------------------------------------
    def own_asset(self, user: str, asset_id: str) -> AssetRecord | None:
        """The caller's asset of an id: an upload, or an output of one of the caller's jobs."""
        record = self.records.asset(asset_id)
        if record is not None:
            return record if record.user == user else None
        found = self.output_asset(user, asset_id)
        return found[2] if found is not None else None

    def output_asset(self, user: str, asset_id: str, admin: bool = False) -> tuple[Job, int, AssetRecord] | None:
        """An output id of the caller's job (any user's for an admin key), with a record describing it."""
        parts = shapes.split_output_id(asset_id)
        if parts is None:
            return None
        job_id, index = parts
        record = self.records.job(job_id)
        if record is None or (record.user != user and not admin):
            return None
        job = self.job_of(record)
        refs = shapes.output_refs(job) if job is not None else []
        if job is None or index >= len(refs):
            return None
        name = refs[index]["url"].rsplit("/", 1)[-1]
        return job, index, AssetRecord(asset_id, record.user, "", name, 0, shapes.content_type(refs[index]), name,
                                       job.finished or job.created)

    def asset_by_hash(self, user: str, digest: str) -> AssetRecord | None:
        """The caller's asset of a hash whose bytes are still kept (retention may have pruned an unused
        upload: its record is then dropped, so the SDK uploads the bytes again instead of minting)."""
        record = self.records.asset_by_hash(user, digest)
        if record is not None and not self.uploads.exists(record.upload):
            self.records.delete_asset(record.id)
            return None
        return record

    def _image_of(self, record: AssetRecord) -> InputImage:
        """The bytes an asset reference stands for, as an input image the job carries to its backend."""
        if shapes.split_output_id(record.id) is not None:
            found = self.output_asset(record.user, record.id)
            if found is None:
                raise V2Error(422, "missing_asset", f"the output {record.id} is no longer available")
            job, index, _ = found
            try:
                data = self.output_image(shapes.output_refs(job)[index]).read()
            except NotFound:
                raise V2Error(404, "output_unavailable", f"the bytes of output {record.id} are no longer "
                              "kept (LinkPix's cache evicted them); run the job again") from None
            return keep_input(self.uploads, data, len(data) + 1)  # a job's video or sound: as it came
        try:
            return self.uploads.get(record.upload, "workflow")
        except BadRequest:
            raise V2Error(422, "missing_asset", f"the bytes of asset {record.id} are no longer kept (unused "
                          "uploads are pruned after jobs_keep_days); upload them again",
                          {"missing_ids": [record.id]}) from None

    def _object_info(self) -> dict[str, Any] | None:
        try:
            return self.svc.pool.object_info()
        except Exception:  # no backend answers: ComfyUI's own validation will judge the graph
            return None
