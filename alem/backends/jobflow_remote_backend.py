"""The jobflow-remote backend: NEB flows added to a jobflow-remote project's queue database; the
project's runner (``jf runner start``) uploads, submits (Slurm/PBS through qtoolkit), retrieves
and completes them. Configure the project with ``hpc_configs/jobflow_remote/*.yaml``.

- external id: the Flow's uuid;
- the alem job key, hop id, method and NEB output uuid are the Flow's ``metadata`` (stored in
  the flow document, queried by :meth:`find_by_key`);
- states from ``JobController.get_flows_info``: COMPLETED -> completed; FAILED/STOPPED -> failed
  (jobflow-remote marks jobs whose queue job vanished as REMOTE_ERROR, which fails the flow);
  RUNNING -> running; WAITING/READY/PAUSED -> queued; flow not in the database -> lost;
- outcome: the NEB document from the project's JobStore;
- retry: a new submission of a hop whose last flow failed, was stopped, or completed with an
  unconverged NEB reuses what that flow finished: endpoints, and the images its NEB reached (VASP
  CONTCARs, MLIP trajectory; :meth:`restart_for`, :mod:`alem.neb.restart`).

Submission goes through the project's ``JobController.add_flow`` after the same checks
``jobflow_remote.submit_flow`` makes (worker exists, every additional store such as atomate2's
``data`` is configured), so one controller (one database connection) serves submit and poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alem.backends.base import Backend, QueueState
from alem.hops.hop import Hop
from alem.neb.presets import Preset
from alem.neb.provenance import PROVENANCE_KEY, provenance_for_run
from alem.neb.schemas import NebOutcome

_STATE_MAP = {
    "COMPLETED": QueueState.COMPLETED,
    "FAILED": QueueState.FAILED,
    "STOPPED": QueueState.FAILED,
    "RUNNING": QueueState.RUNNING,
    "WAITING": QueueState.QUEUED,
    "READY": QueueState.QUEUED,
    "PAUSED": QueueState.QUEUED,
}


def _last_line(text: str | None) -> str:
    lines = [line for line in str(text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


class JobflowRemoteBackend(Backend):
    """Submit NEB flows to a jobflow-remote project."""

    name = "jobflow-remote"

    def __init__(self, preset: Preset, project: str | None = None, worker: str | None = None, job_controller: Any = None):
        self.preset = preset
        self.project_name = project
        self.worker = worker
        self._jc = job_controller

    @property
    def job_controller(self):
        if self._jc is None:
            from jobflow_remote import JobController

            self._jc = JobController.from_project_name(self.project_name)
        return self._jc

    def _worker_name(self) -> str:
        workers = self.job_controller.project.workers
        if self.worker:
            if self.worker not in workers:
                raise ValueError(f"jobflow-remote project {self.job_controller.project.name!r} has no worker "
                                 f"{self.worker!r} (it has: {', '.join(workers) or 'none'})")
            return self.worker
        if not workers:
            raise ValueError(f"jobflow-remote project {self.job_controller.project.name!r} has no workers")
        return next(iter(workers))

    def _flow_info(self, external_id: str):
        infos = self.job_controller.get_flows_info(flow_ids=[external_id])
        return infos[0] if infos else None

    # ------------------------------------------------------------ Backend API
    def find_by_key(self, job_key: str) -> str | None:
        infos = self.job_controller.get_flows_info(metadata={"alem_job_key": job_key})
        if not infos:
            return None
        return max(infos, key=lambda info: info.created_on).flow_id

    def submit(self, hop: Hop, job_key: str) -> str:
        from jobflow_remote.config.jobconfig import set_run_config
        from jobflow_remote.remote.data import check_additional_stores

        from alem.neb.flows import NODES_KEY, neb_flow_for_hop, output_uuid, queue_request_with_nodes

        existing = self.find_by_key(job_key)
        if existing is not None:
            return existing
        flow = neb_flow_for_hop(hop, self.preset, restart=self.restart_for(hop))
        flow.metadata.update({"alem_job_key": job_key, "alem_output_uuid": output_uuid(flow)})
        worker = self._worker_name()
        jobstore = self.job_controller.jobstore
        worker_resources = dict(getattr(self.job_controller.project.workers[worker], "resources", None) or {})
        for job, _ in flow.iterflow():
            if NODES_KEY in job.metadata and worker_resources:
                # a job's own resources replace the worker's: keep the worker's and change nodes only
                set_run_config(job, resources=queue_request_with_nodes(worker_resources, job.metadata[NODES_KEY]))
            missing = check_additional_stores(job, jobstore)
            if missing:
                raise ValueError(f"jobflow-remote project {self.job_controller.project.name!r}: its jobstore lacks the "
                                 f"additional store(s) {missing} that job {job.name!r} writes to (add them under "
                                 "jobstore.additional_stores; see hpc_configs/jobflow_remote)")
        self.job_controller.add_flow(flow=flow, worker=worker)
        return flow.uuid

    def restart_for(self, hop: Hop):
        """What the latest flow of ``hop`` under this preset finished, when it failed, was
        stopped, or completed with an unconverged NEB (a converged one is judged, not continued):
        the endpoint outputs in the project's JobStore and the run directory of its NEB job (VASP:
        the CONTCARs there; MLIP: the optimiser's trajectory there, read by a job of the retry)."""
        from alem.neb.restart import JOB_UUIDS_KEY, restart_from_records

        infos = [info for info in self.job_controller.get_flows_info(
                     metadata={"alem_hop_id": hop.hop_id, "alem_preset": self.preset.name})
                 if info.state.value in ("FAILED", "STOPPED", "COMPLETED")]
        if not infos:
            return None
        previous = max(infos, key=lambda info: info.created_on)
        if previous.state.value == "COMPLETED" and self.outcome(previous.flow_id).converged:
            return None
        metadata = previous.flow_metadata or {}
        uuids = metadata.get(JOB_UUIDS_KEY) or {}
        jobs = {job.uuid: job for job in self.job_controller.get_jobs_info(flow_ids=[previous.flow_id])}
        store = self.job_controller.project.get_jobstore(self.job_controller.get_flow_store(previous.flow_id))
        store.connect()
        outputs = {}
        for key, uuid in uuids.items():
            if key.startswith("endpoint") and uuid in jobs and jobs[uuid].state.value == "COMPLETED":
                outputs[uuid] = store.get_output(uuid, which="last", load=True)
        neb_job = jobs.get(uuids.get("neb"))
        restart = restart_from_records(previous.flow_id, metadata, outputs, neb_job.run_dir if neb_job else None)
        return restart if restart.reuses_anything else None

    def poll(self, external_ids: Sequence[str]) -> dict[str, QueueState]:
        infos = {info.flow_id: info for info in self.job_controller.get_flows_info(flow_ids=list(external_ids))}
        return {
            external_id: _STATE_MAP.get(infos[external_id].state.value, QueueState.QUEUED) if external_id in infos else QueueState.LOST
            for external_id in external_ids
        }

    def outcome(self, external_id: str) -> NebOutcome:
        outcome, metadata = self._outcome_and_metadata(external_id)
        # the worker is not alem's: the versions are the submitting alem's (provenance record)
        outcome.provenance = provenance_for_run(metadata.get(PROVENANCE_KEY), None, outcome.details.get("dir_name"))
        return outcome

    def _outcome_and_metadata(self, external_id: str) -> tuple[NebOutcome, dict]:
        from alem.neb.barrier import failed_check_outcome, outcome_from_job_store

        info = self._flow_info(external_id)
        if info is None:
            return NebOutcome(failure_reason=f"jobflow-remote flow {external_id} is not in the queue database"), {}
        metadata = info.flow_metadata or {}
        method = metadata.get("alem_method", "")
        if info.state.value != "COMPLETED":
            # A failed endpoint check stops the NEB's jobs on purpose: say why
            stopped = failed_check_outcome(self.job_controller.project.get_jobstore(self.job_controller.get_flow_store(external_id)),
                                           metadata.get("alem_output_uuid", ""), method)
            if stopped is not None:
                return stopped, metadata
            errors = [f"{job.name}: {_last_line(job.error or job.remote.error) or job.state.value}"
                      for job in self.job_controller.get_jobs_info(flow_ids=[external_id])
                      if job.state.value in ("FAILED", "REMOTE_ERROR", "STOPPED", "USER_STOPPED")]
            reason = "; ".join(errors) or f"flow is {info.state.value}"
            return NebOutcome(failure_reason=f"jobflow-remote flow {external_id} {info.state.value}: {reason}", method=method), metadata
        # The project's JobStore (a fresh object: a file-backed store connected earlier would be stale).
        store = self.job_controller.project.get_jobstore(self.job_controller.get_flow_store(external_id))
        outcome = outcome_from_job_store(store, metadata["alem_output_uuid"], method=method,
                                         criteria=self.preset.path_criteria)
        outcome.details.setdefault("flow_id", external_id)
        return outcome, metadata

    def cancel(self, external_id: str) -> None:
        # READY and running jobs are stopped (and cancelled in the queue); the waiting rest follow.
        self.job_controller.stop_jobs(flow_ids=[external_id], raise_on_error=False)
        self.job_controller.stop_jobflow(flow_uuid=external_id)
