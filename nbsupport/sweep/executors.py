"""Where sweep points run: a local pool of stoppable processes, or dask.distributed.

Both executors take task dicts (built by :func:`nbsupport.sweep.driver.sweep`) and yield
outcome dicts as points finish; the process that called ``sweep`` writes every file. An
executor is a context manager: entering it connects (a Dask scheduler that does not answer
is one :class:`UsageError` within seconds, before any file is written); leaving it stops
whatever still runs.
"""

from __future__ import annotations

import re
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from nbsupport.runner import ROOT, UsageError, execute_captured, share_cores
from nbsupport.sweep.grid import notebook_digest
from nbsupport.workers import run_each

#: How long a Dask scheduler has to answer.
CONNECT_TIMEOUT_S = 5
ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):\d{1,5}/?$")


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Execute one grid point (on any worker) and return its outcome with the executed
    notebook's text, so the caller writes every file. The notebook runs from its own folder
    when the worker has the same notebook there, else from a temporary copy of the source."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nbsweep-") as tmp:
        path = next((p for p in (Path(task["notebook"]), ROOT / task["relpath"])
                     if p.is_file() and notebook_digest(p) == task["digest"]), None)
        if path is None:
            path = Path(tmp) / "src" / Path(task["notebook"]).name
            path.parent.mkdir()
            path.write_text(task["source"], encoding="utf-8")
        try:
            done = execute_captured(path, task["scale"], task["params"], cell_timeout=task.get("cell_timeout"))
        except Exception as exc:  # noqa: BLE001 - any failure belongs to this point only
            return failed(task, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    res = done.result
    return {"key": task["key"], "status": res.status, "error": res.error, "seconds": res.seconds,
            "records": res.records, "claims": res.claims, "ipynb": done.files.get(res.output, ""),
            "html": done.files.get(res.html, ""), "worker": socket.gethostname()}


def failed(task: dict[str, Any], error: str, seconds: float = 0.0) -> dict[str, Any]:
    """The outcome of a point that produced no notebook."""
    return {"key": task["key"], "status": "failed", "error": error, "seconds": round(seconds, 2),
            "records": {}, "claims": [], "ipynb": "", "html": "", "worker": ""}


class LocalExecutor:
    """``jobs`` processes on this machine (:func:`nbsupport.workers.run_each`); a point that
    runs past ``timeout`` seconds is stopped with its kernel."""

    def __init__(self, jobs: int, timeout: float | None = None):
        self.jobs, self.timeout = jobs, timeout

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def run(self, tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Outcomes as points finish; closing the generator stops the running points."""
        threads = share_cores(self.jobs)
        outcomes = run_each(run_point, [(t,) for t in tasks], self.jobs, timeout=self.timeout, threads=threads)
        with closing(outcomes):
            for o in outcomes:
                yield o.value if o.value is not None else failed(tasks[o.index], o.error, o.seconds)


def check_address(address: str) -> None:
    """A scheduler address must read ``tcp://HOST:PORT`` (or tls, ucx, ws, wss)."""
    if not ADDRESS.match(address) or int(address.rstrip("/").rsplit(":", 1)[1]) > 65535:
        raise UsageError(f"--address {address!r} is not a scheduler address: write tcp://HOST:PORT, "
                         "e.g. tcp://10.0.0.5:8786")


class DaskExecutor:
    """Points as dask.distributed tasks: on the scheduler at ``address``, else on an embedded
    LocalCluster of ``jobs`` worker processes. Workers cannot stop a running task from
    outside, so there ``timeout`` limits each cell of the notebook (papermill's
    ``execution_timeout``)."""

    def __init__(self, jobs: int, address: str | None = None, cluster_kwargs: dict[str, Any] | None = None,
                 timeout: float | None = None):
        if address:
            check_address(address)
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise UsageError("the dask executor needs dask.distributed: pip install distributed") from None
        self.jobs, self.address, self.timeout = jobs, address, timeout
        self.cluster_kwargs = cluster_kwargs or {}
        self.client = self.cluster = None

    def __enter__(self) -> DaskExecutor:
        from distributed import Client, LocalCluster

        if self.address:
            try:
                self.client = Client(self.address, timeout=f"{CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise UsageError(f"no dask scheduler answered at {self.address} within "
                                 f"{CONNECT_TIMEOUT_S} s ({type(exc).__name__}): start one with "
                                 "`dask scheduler`, or leave out --address for a local cluster") from None
        else:
            kwargs = {"n_workers": self.jobs, "threads_per_worker": 1, "processes": True,
                      "dashboard_address": None, **self.cluster_kwargs}
            self.cluster = LocalCluster(**kwargs)
            self.client = Client(self.cluster)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def run(self, tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Outcomes as points finish; closing the generator cancels the others."""
        from distributed import as_completed

        run = uuid.uuid4().hex[:8]  # this sweep's tasks only, even on a shared scheduler
        tasks = [{**t, "cell_timeout": self.timeout} for t in tasks]
        futures = [self.client.submit(run_point, t, key=f"nbsweep-{t['key']}-{run}") for t in tasks]
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        try:
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except Exception as exc:  # noqa: BLE001 - worker lost, task error: this point failed
                    yield failed(by_key[fut.key], f"{type(exc).__name__}: {exc}")
        finally:
            self.client.cancel(futures)

