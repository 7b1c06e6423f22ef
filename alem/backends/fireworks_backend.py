"""The FireWorks backend: NEB flows converted with jobflow's FireWorks bridge and added to a
LaunchPad; workers on the cluster (``qlaunch``/``rlaunch`` with the templates in
``hpc_configs/fireworks``) run them and write outputs to the jobflow JobStore.

- external id: the smallest fw_id of the workflow (any fw_id identifies it);
- the alem job key, hop id, method and the uuid of the NEB output job are stored in the
  workflow's ``metadata``, so a submission whose id never reached alem's store is found again;
- states: COMPLETED -> completed; FIZZLED/DEFUSED -> failed; RUNNING but a Firework's heartbeat
  older than ``lost_run_expiration_s`` (``LaunchPad.detect_lostruns``) -> lost; no workflow -> lost;
  READY/WAITING/RESERVED/PAUSED -> queued;
- outcome: the NEB document read from the JobStore the workers write to;
- retry: a new submission of a hop whose last workflow fizzled, was defused, or completed with an
  unconverged NEB reuses what that workflow finished: endpoints, and the images its NEB reached
  (VASP CONTCARs, MLIP trajectory; :meth:`restart_for`, :mod:`alem.neb.restart`).

The JobStore is jobflow's configured ``JOB_STORE`` (``JOBFLOW_CONFIG_FILE``/``~/.jobflow.yaml``,
which must match the workers' and include a ``data`` additional store) unless one is passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alem.backends.base import Backend, QueueState
from alem.hops.hop import Hop
from alem.neb.presets import Preset
from alem.neb.provenance import PROVENANCE_KEY, provenance_for_run
from alem.neb.schemas import NebOutcome

#: FireWorks' own default for a lost run is 4 hours without a heartbeat.
DEFAULT_LOST_RUN_EXPIRATION_S = 4 * 3600

_STATE_MAP = {
    "COMPLETED": QueueState.COMPLETED,
    "FIZZLED": QueueState.FAILED,
    "DEFUSED": QueueState.FAILED,
    "ARCHIVED": QueueState.FAILED,
    "RUNNING": QueueState.RUNNING,
    "RESERVED": QueueState.QUEUED,
    "READY": QueueState.QUEUED,
    "WAITING": QueueState.QUEUED,
    "PAUSED": QueueState.QUEUED,
}


class FireWorksBackend(Backend):
    """Submit NEB flows as FireWorks workflows."""

    name = "fireworks"

    def __init__(
        self,
        preset: Preset,
        launchpad_file: str | Path | None = None,
        fworker_name: str | None = None,
        launchpad: Any = None,
        job_store: Any = None,
        embed_job_store: bool = False,
        lost_run_expiration_s: float = DEFAULT_LOST_RUN_EXPIRATION_S,
    ):
        """``launchpad``/``job_store`` may be given directly (tests, scripts); otherwise they come
        from ``launchpad_file`` and jobflow's settings. ``embed_job_store`` writes ``job_store``
        into every Firework's spec so workers use it instead of their own ``JOB_STORE``."""
        self.preset = preset
        self.launchpad_file = Path(launchpad_file) if launchpad_file else None
        self.fworker_name = fworker_name
        self._launchpad = launchpad
        self._job_store = job_store
        self.embed_job_store = embed_job_store
        self.lost_run_expiration_s = lost_run_expiration_s

    @property
    def launchpad(self):
        if self._launchpad is None:
            from fireworks import LaunchPad

            if self.launchpad_file is None:
                raise ValueError("no LaunchPad: set [backend.fireworks] launchpad_file")
            if not self.launchpad_file.is_file():
                raise ValueError(f"{self.launchpad_file}: launchpad file not found")
            self._launchpad = LaunchPad.from_file(str(self.launchpad_file))
        return self._launchpad

    @property
    def job_store(self):
        if self._job_store is None:
            from jobflow import SETTINGS

            self._job_store = SETTINGS.JOB_STORE
        return self._job_store

    # ------------------------------------------------------------------ helpers
    def _workflow(self, external_id: str) -> dict | None:
        try:
            fw_id = int(external_id)
        except ValueError:
            return None
        return self.launchpad.workflows.find_one({"nodes": fw_id}, {"state": 1, "nodes": 1, "metadata": 1, "fw_states": 1})

    # ------------------------------------------------------------ Backend API
    def find_by_key(self, job_key: str) -> str | None:
        docs = self.launchpad.workflows.find({"metadata.alem_job_key": job_key}, {"nodes": 1, "created_on": 1})
        docs = sorted(docs, key=lambda d: str(d.get("created_on", "")))
        return str(min(docs[-1]["nodes"])) if docs else None

    def submit(self, hop: Hop, job_key: str) -> str:
        from jobflow.managers.fireworks import flow_to_workflow

        from alem.neb.flows import NODES_KEY, neb_flow_for_hop, output_uuid, queue_request_with_nodes

        existing = self.find_by_key(job_key)
        if existing is not None:
            return existing
        flow = neb_flow_for_hop(hop, self.preset, restart=self.restart_for(hop))
        if self.fworker_name:
            flow.update_config({"manager_config": {"_fworker": self.fworker_name}})
        for job, _ in flow.iterflow():
            if NODES_KEY in job.metadata:  # qlaunch -r merges a Firework's _queueadapter into the qadapter
                job.metadata["_queueadapter"] = queue_request_with_nodes({}, job.metadata[NODES_KEY])
        metadata = {**flow.metadata, "alem_job_key": job_key, "alem_output_uuid": output_uuid(flow)}
        workflow = flow_to_workflow(flow, store=self._job_store if self.embed_job_store else None,
                                    name=flow.name, metadata=metadata)
        id_map = self.launchpad.add_wf(workflow)
        return str(min(id_map.values()))

    def restart_for(self, hop: Hop):
        """What the latest workflow of ``hop`` under this preset finished, when it fizzled, was
        defused, or completed with an unconverged NEB (a converged one is judged, not continued):
        the endpoint outputs in the JobStore and the launch directory of its NEB Firework (VASP:
        the CONTCARs there; MLIP: the optimiser's trajectory there, read by a job of the retry)."""
        from alem.neb.restart import JOB_UUIDS_KEY, restart_from_records

        previous = sorted(
            self.launchpad.workflows.find(
                {"metadata.alem_hop_id": hop.hop_id, "metadata.alem_preset": self.preset.name,
                 "state": {"$in": ["FIZZLED", "DEFUSED", "COMPLETED"]}}, {"nodes": 1, "metadata": 1, "created_on": 1, "state": 1}),
            key=lambda d: str(d.get("created_on", "")),
        )
        if not previous:
            return None
        workflow = previous[-1]
        if workflow.get("state") == "COMPLETED" and self.outcome(str(min(workflow["nodes"]))).converged:
            return None
        uuids = (workflow.get("metadata") or {}).get(JOB_UUIDS_KEY) or {}
        store = type(self.job_store).from_dict(self.job_store.as_dict())
        store.connect()
        outputs = {}
        for key, uuid in uuids.items():
            if key.startswith("endpoint"):
                try:
                    outputs[uuid] = store.get_output(uuid, which="last", load=True)
                except ValueError:  # jobflow: the job stored no output (it did not finish)
                    pass
        neb_dir = None
        firework = self.launchpad.fireworks.find_one(
            {"fw_id": {"$in": workflow["nodes"]}, "spec._tasks.job.uuid": uuids.get("neb")}, {"fw_id": 1})
        if firework is not None:
            launches = [launch for launch in self.launchpad.launches.find({"fw_id": firework["fw_id"]}, {"launch_dir": 1, "time_start": 1})
                        if launch.get("launch_dir")]
            if launches:
                neb_dir = max(launches, key=lambda launch: str(launch.get("time_start", "")))["launch_dir"]
        restart = restart_from_records(str(min(workflow["nodes"])), workflow.get("metadata") or {}, outputs, neb_dir)
        return restart if restart.reuses_anything else None

    def poll(self, external_ids: Sequence[str]) -> dict[str, QueueState]:
        states: dict[str, QueueState] = {}
        running: dict[str, list[int]] = {}
        for external_id in external_ids:
            workflow = self._workflow(external_id)
            if workflow is None:
                states[external_id] = QueueState.LOST
                continue
            states[external_id] = _STATE_MAP.get(workflow.get("state"), QueueState.QUEUED)
            if states[external_id] is QueueState.RUNNING:
                running[external_id] = list(workflow["nodes"])
        if running:
            all_nodes = [fw_id for nodes in running.values() for fw_id in nodes]
            _, lost_fw_ids, _ = self.launchpad.detect_lostruns(
                expiration_secs=self.lost_run_expiration_s, fizzle=False, query={"fw_id": {"$in": all_nodes}}
            )
            for external_id, nodes in running.items():
                if set(nodes) & set(lost_fw_ids):
                    states[external_id] = QueueState.LOST
        return states

    def _fizzle_reason(self, workflow: dict) -> str:
        launch = self.launchpad.launches.find_one(
            {"fw_id": {"$in": workflow["nodes"]}, "state": "FIZZLED"}, {"action": 1, "fw_id": 1}
        )
        trace = (((launch or {}).get("action") or {}).get("stored_data") or {}).get("_exception", {}).get("_stacktrace", "")
        last = [line for line in str(trace).strip().splitlines() if line.strip()]
        return f"Firework {launch['fw_id']}: {last[-1]}" if launch and last else "no error message recorded"

    def outcome(self, external_id: str) -> NebOutcome:
        outcome, metadata = self._outcome_and_metadata(external_id)
        # the worker is not alem's: the versions are the submitting alem's (provenance record)
        outcome.provenance = provenance_for_run(metadata.get(PROVENANCE_KEY), None, outcome.details.get("dir_name"))
        return outcome

    def _outcome_and_metadata(self, external_id: str) -> tuple[NebOutcome, dict]:
        from alem.neb.barrier import failed_check_outcome, outcome_from_job_store

        workflow = self._workflow(external_id)
        if workflow is None:
            return NebOutcome(failure_reason=f"FireWorks workflow with fw_id {external_id} is not on the LaunchPad"), {}
        metadata = workflow.get("metadata") or {}
        method = metadata.get("alem_method", "")
        state = workflow.get("state")
        if state != "COMPLETED":
            # A failed endpoint check defuses the NEB's Fireworks on purpose: say why
            stopped = failed_check_outcome(type(self.job_store).from_dict(self.job_store.as_dict()),
                                           metadata.get("alem_output_uuid", ""), method)
            if stopped is not None:
                return stopped, metadata
            reason = self._fizzle_reason(workflow) if state == "FIZZLED" else f"workflow is {state}"
            return NebOutcome(failure_reason=f"FireWorks workflow {external_id} {state}: {reason}", method=method), metadata
        # A fresh store object: a file-backed store connected earlier would serve a stale copy.
        store = type(self.job_store).from_dict(self.job_store.as_dict())
        outcome = outcome_from_job_store(store, metadata["alem_output_uuid"], method=method,
                                         criteria=self.preset.path_criteria)
        outcome.details.setdefault("fw_id", int(external_id))
        return outcome, metadata

    def cancel(self, external_id: str) -> None:
        if self._workflow(external_id) is not None:
            self.launchpad.defuse_wf(int(external_id))
