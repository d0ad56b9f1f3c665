"""Ray: the batch's lines as tasks for actors on a Ray cluster, one model per actor process.

Ray is imported here only, when `--ray` is asked for; nothing else in Lalia needs it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from ..base.errors import LaliaError

log = logging.getLogger(__name__)
IN_FLIGHT_PER_ACTOR = 2  # the next line waits at the actor while the driver writes the last one


def _ray():
    try:
        import ray
    except ImportError:
        raise LaliaError("--ray needs Ray on this machine and the cluster: pip install 'ray[default]'")
    return ray


class RayPool:
    """`address`: 'auto' (the cluster `ray start` or RAY_ADDRESS points at, else a local one
    started here) or a cluster address (ray://head:10001, head:6379). `workers` actors (0 or
    None: one per `threads` CPUs the cluster has), each loading the model once."""

    def __init__(self, address: str, workers: int | None, checkpoint, threads: int):
        ray = _ray()
        self.started = False
        if not ray.is_initialized():
            kw = dict(logging_level=logging.WARNING, log_to_driver=False)
            if address == "auto":
                try:
                    ray.init(address="auto", **kw)
                except ConnectionError:
                    log.info("no running Ray cluster found: starting a local one")
                    ray.init(num_cpus=max(1, (workers or 1) * threads), include_dashboard=False, **kw)
            else:
                ray.init(address=address, **kw)
            self.started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = int(workers) if workers and workers > 0 else max(1, cpus // threads)
        # a checkout's model_core (not an installed one) must be importable in the workers too;
        # on other nodes the path is absent and their installed lalia is used
        code_root = str(Path(__file__).resolve().parents[2])
        env = {"env_vars": {"PYTHONPATH": code_root + ":${PYTHONPATH}"}}
        from .render import init_worker, render

        @ray.remote(num_cpus=threads, runtime_env=env, max_restarts=0)
        class LineWorker:
            def __init__(self, checkpoint, threads):
                init_worker(checkpoint, threads)

            def render(self, task):
                return render(task)

        self.actors = [LineWorker.remote(checkpoint, threads) for _ in range(n)]
        self.describe = f"Ray, {n} actors ({threads} thread(s) each) on a cluster of {cpus} CPUs"

    def map(self, tasks, send: bool) -> Iterator:
        ray = _ray()
        from .run import _payload
        queue = iter(tasks)
        free = [a for a in self.actors for _ in range(IN_FLIGHT_PER_ACTOR)]
        pending: dict = {}
        alive = set(self.actors)
        try:
            while True:
                while free:
                    item = next(queue, None)
                    if item is None:
                        break
                    actor = free.pop()
                    try:
                        pending[actor.render.remote(_payload(item[1], send))] = (item, actor)
                    except OSError as e:
                        free.append(actor)
                        yield item, {"ok": False, "error": f"can't read the audio: {e}"}
                if not pending:
                    return
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                item, actor = pending.pop(ref)
                try:
                    res = ray.get(ref)
                    free.append(actor)
                except ray.exceptions.RayActorError as e:  # the actor's process died: it gets no more lines
                    alive.discard(actor)
                    res = {"ok": False, "error": f"Ray worker died: {e}"}
                except ray.exceptions.RayError as e:
                    free.append(actor)
                    res = {"ok": False, "error": f"Ray: {type(e).__name__}: {e}"}
                yield item, res
                if not alive:
                    raise LaliaError("every Ray worker died; rerun to resume (results.jsonl keeps the lines done)")
        finally:
            for a in self.actors:
                ray.kill(a)
            if self.started:
                ray.shutdown()
