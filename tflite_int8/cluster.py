"""Independent calls run in order here, or as Ray tasks on a cluster: one small executor protocol.

verify's sample shards, recover's independent strategies and ``batch``'s models are lists of independent
calls.  An :class:`Executor` maps a picklable function over them and returns the results in list order:

- :class:`InOrder` runs them one after the other in this process (what every command does without ``--ray``);
- :class:`RayExecutor` submits each as a Ray task.  Ray does the scheduling, the transport (``shared`` goes
  once through its object store) and the retries on worker loss (``max_retries``); this module only keeps
  the order, cancels what an early ``stop`` makes useless, maps Ray's errors onto :mod:`.errors` and reports
  which calls were retried.

:func:`ray_session` connects: ``local`` starts a private Ray instance on this machine (loopback only, no
dashboard, no usage statistics; shut down at the end), ``auto`` joins the cluster started with
``ray start --head`` on this machine, ``HOST:PORT`` or ``ray://HOST:PORT`` that cluster.  A process already
connected (``ray.init`` called by the user, or a Ray worker) keeps its connection.  Ray is an optional extra.

``auto`` means what ``ray start --head`` recorded (``RAY_ADDRESS``, else Ray's ``ray_current_cluster`` file), never
what Ray's own ``auto`` falls back to, a scan of this machine's processes: that finds the private instance of any
other program's ``ray.init()``.  An existing cluster must answer within ``timeout`` seconds (:data:`RAY_TIMEOUT`),
checked in a child process (:func:`reach`) before ``ray.init``: Ray's own connect retries for minutes, silently.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator, Protocol, Sequence

from .errors import InputError, Int8Error

NOTHING: Any = object()  # ``shared`` not given
RETRIES = 3  # Ray re-runs a call this many times when its worker or node dies
EXTRA = "pip install 'tflite-int8[ray]'"
RAY_TIMEOUT = 60.0  # seconds an existing cluster (--ray ADDRESS|auto) has to answer (--ray-timeout, ray_timeout=)
_ADDRESS = re.compile(r"^(local|auto|(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d+)$")
# Ray reads these when it is imported and when it starts its processes: the single-machine mode binds every
# process to 127.0.0.1 (otherwise to the machine's network address); usage statistics would be sent home.
# RAY_AUTH_MODE=disabled: no token file written into the user's ~/.ray. HOME points, while Ray starts its
# processes (which keep it), at the instance's own folder holding an empty ray_bootstrap_config.yaml: without
# that file Ray's dashboard head probes cloud metadata services (169.254.169.254, metadata.google.internal)
# even with usage statistics off.
_LOCAL_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@dataclass
class Mapped:
    """Results in item order (a prefix when ``stop`` ended the run early) and the attempts each took."""

    results: list[Any]
    attempts: list[int] = field(default_factory=list)

    def retried(self) -> list[int]:
        """Indices of the calls that ran more than once (their worker was lost)."""
        return [i for i, a in enumerate(self.attempts) if a > 1]


class Executor(Protocol):
    cpus: int  # how many calls can run at once
    remote: bool  # calls run in other processes: they share nothing with this one but what they are given
    where: dict[str, Any]  # what ran the calls, for reports

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *, shared: Any = NOTHING,
            stop: Callable[[Any], bool] | None = None, done: Callable[[int, Any], None] | None = None,
            labels: Sequence[str] | None = None) -> Mapped:
        """``fn(item)`` (``fn(shared, item)`` when given) for each item; results in item order, up to and
        including the first for which ``stop(result)`` holds; ``done(index, result)`` as each one ends."""
        ...


class InOrder:
    """One call after the other, in this process."""

    cpus = 1
    remote = False
    where: dict[str, Any] = {"executor": "this process"}

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *, shared: Any = NOTHING,
            stop: Callable[[Any], bool] | None = None, done: Callable[[int, Any], None] | None = None,
            labels: Sequence[str] | None = None) -> Mapped:
        results = []
        for i, item in enumerate(items):
            value = fn(item) if shared is NOTHING else fn(shared, item)
            results.append(value)
            if done is not None:
                done(i, value)
            if stop is not None and stop(value):
                break
        return Mapped(results, [1] * len(results))


def executor(ray: str | None, timeout: float = RAY_TIMEOUT) -> ContextManager[Executor]:
    """:class:`InOrder` without an address, else a :func:`ray_session`."""
    return nullcontext(InOrder()) if ray is None else ray_session(ray, timeout=timeout)


def check_address(address: str) -> str:
    """``local``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; anything else is refused."""
    if not _ADDRESS.match(address):
        raise InputError(f"{address!r} is not a Ray address: give local (a new Ray instance on this machine), auto "
                         f"(the cluster started here with `ray start --head`), HOST:PORT or ray://HOST:PORT")
    return address


def check_timeout(timeout: float) -> float:
    if not timeout > 0:
        raise InputError(f"the Ray timeout must be a positive number of seconds, got {timeout!r} (--ray-timeout)")
    return float(timeout)


def check_ray(address: str, timeout: float = RAY_TIMEOUT) -> str:
    """The address and timeout checked, and Ray installed (found, not imported: :func:`start` imports it its
    own way)."""
    check_address(address)
    check_timeout(timeout)
    if sys.modules.get("ray") is None and importlib.util.find_spec("ray") is None:
        raise InputError(f"--ray needs Ray, an optional extra of tflite-int8: {EXTRA} (setup.sh installs it)")
    return address


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(f"--ray needs Ray, an optional extra of tflite-int8: {EXTRA} (setup.sh installs it)") from None
    return ray


@contextmanager
def ray_session(address: str = "local", *, num_cpus: int | None = None,
                timeout: float = RAY_TIMEOUT) -> Iterator["RayExecutor"]:
    """A :class:`RayExecutor` on the cluster at ``address`` (see the module docstring); what this call started
    it also stops."""
    check_ray(address, timeout)
    loaded = sys.modules.get("ray")
    started = not (loaded is not None and loaded.is_initialized())
    temp = start(address, num_cpus=num_cpus, timeout=timeout) if started else None
    ray = import_ray()
    try:
        yield RayExecutor(ray, started_here=started)
    finally:
        if started:
            ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def start(address: str = "local", *, num_cpus: int | None = None, timeout: float = RAY_TIMEOUT) -> str | None:
    """Connect this process to Ray.  ``local`` starts a loopback-only instance whose files (session logs,
    sockets, the shards' model copies) live in a temporary folder: returned, for the caller to remove after
    ``ray.shutdown()``.  Any other address is resolved (:func:`resolve`) and must answer within ``timeout``
    seconds (:func:`reach`)."""
    check_ray(address, timeout)
    local = address == "local"
    if not local:
        address, origin = resolve(address)
        reach(address, timeout, origin)
    saved = {k: os.environ.get(k) for k in (*_LOCAL_ONLY, "HOME")}
    temp = tempfile.mkdtemp(prefix="tflite-int8-ray-") if local else None
    if local:
        with open(os.path.join(temp, "ray_bootstrap_config.yaml"), "w") as f:
            f.write("{}\n")
        os.environ.update(_LOCAL_ONLY, HOME=temp)
    try:
        ray = import_ray()
        options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        if local:
            options.update(num_cpus=num_cpus, _temp_dir=temp)
        try:
            ray.init(address=address, **options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            if temp is not None:
                shutil.rmtree(temp, ignore_errors=True)
            raise InputError(f"cannot connect to the Ray cluster at {address!r}: {str(exc).rstrip('.')}. Start one "
                             f"with `ray start --head` (then --ray auto) or give its HOST:PORT") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return temp


def resolve(address: str) -> tuple[str, str]:
    """``auto`` -> the address ``ray start --head`` recorded on this machine, and where it was read (for
    messages): ``RAY_ADDRESS``, else Ray's ``ray_current_cluster`` file.  Never a process scan (module docstring).
    Any other address is returned as given."""
    if address != "auto":
        return address, ""
    given = os.environ.get("RAY_ADDRESS", "")
    if given not in ("", "auto", "local"):
        return check_address(given), " (from RAY_ADDRESS)"
    path = _address_file()
    try:
        with open(path) as f:
            recorded = f.read().strip()
    except OSError:
        recorded = ""
    if recorded:
        return recorded, f" (recorded in {path} by `ray start --head`)"
    others = _private_instances()
    seen = (f"; {'instances' if len(others) > 1 else 'an instance'} private to another program's ray.init() "
            f"({', '.join(others)}) {'are' if len(others) > 1 else 'is'} not joined" if others else "")
    raise InputError(f"--ray auto: no cluster started with `ray start --head` on this machine (RAY_ADDRESS is not "
                     f"set, no {path}){seen}. Start one with `ray start --head`, give the cluster's HOST:PORT, or "
                     f"give --ray alone for a private instance for this run")


def _address_file() -> str:
    """Where ``ray start --head`` records its address: Ray's rule (``ray._common.utils.get_ray_address_file``),
    not imported from Ray: importing Ray here would fix its settings before a ``local`` instance sets them."""
    base = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if sys.platform.startswith("linux") else None)
    return os.path.join(base or ("/tmp" if os.name == "posix" else tempfile.gettempdir()), "ray", "ray_current_cluster")


def _private_instances() -> list[str]:
    """The GCS addresses of the Ray nodes running on this machine (Ray's process scan: a raylet's
    ``--gcs-address``), only to name them in a message, never joined."""
    try:
        import psutil  # a dependency of Ray
    except ImportError:
        return []
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if cmd and "raylet" in os.path.basename(cmd[0]):
            found.update(arg.split("=", 1)[1] for part in cmd for arg in part.split(" ")
                         if arg.startswith("--gcs-address=") and arg.split("=", 1)[1] not in ("", "None"))
    return sorted(found)


# Run by reach() in a child: the one-line reason on stdout, Ray's own log lines (stderr) dropped.
_PROBE = ("import sys\nfrom tflite_int8.cluster import probe\ntry:\n    probe(sys.argv[1], float(sys.argv[2]))\n"
          "except BaseException as exc:\n    sys.stdout.write(f'{type(exc).__name__}: {exc}'.splitlines()[0])\n"
          "    sys.exit(1)\n")


def reach(address: str, timeout: float = RAY_TIMEOUT, origin: str = "") -> None:
    """InputError, naming ``address`` and why, unless the cluster there answers within ``timeout`` seconds:
    :func:`probe` in a child process, killed at the deadline."""
    try:
        run = subprocess.run([sys.executable, "-c", _PROBE, address, repr(float(timeout))], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        reason = f"no answer within {timeout:g} s"
    else:
        if run.returncode == 0:
            return
        reason = run.stdout.strip() or f"the check ended with code {run.returncode}"
    raise InputError(f"cannot reach the Ray cluster at {address}{origin} ({reason}): "
                     f"check that it runs (`ray status --address {address.removeprefix('ray://')}`), give another "
                     f"address, or a longer --ray-timeout (now {timeout:g} s)")


def probe(address: str, timeout: float) -> None:
    """Raise unless the cluster at ``address`` answers: its port accepts a connection; a GCS address (not
    ray://) answers as Ray's GCS and has a node on this machine (what ``ray.init`` joins); a Ray Client address
    answers gRPC.  Run in a child by :func:`reach` (Ray's client logs to stderr and retries for minutes)."""
    import socket

    deadline = time.monotonic() + timeout
    client = address.startswith("ray://")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
    if client:
        import grpc

        grpc.channel_ready_future(grpc.insecure_channel(address.removeprefix("ray://"))).result(timeout=left())
        return
    from ray._private.services import get_node_to_connect_for_driver
    from ray._raylet import GcsClient

    gcs = GcsClient(address=address)
    gcs.internal_kv_get(b"tflite-int8-probe", None, timeout=left())
    try:
        get_node_to_connect_for_driver(gcs, timeout_seconds=left())
    except RuntimeError:
        raise ConnectionError(f"no node of that cluster runs on this machine: join it first (`ray start --address="
                              f"{address}`) or use its Ray Client address (ray://HOST:10001)") from None


def node_address() -> str:
    """The address of the Ray node this code runs on (for messages)."""
    return str(import_ray().util.get_node_ip_address())


def node_folder(prefix: str) -> "tempfile.TemporaryDirectory[str]":
    """A temporary folder in Ray's own folder on this node (a killed worker's leftovers go with Ray's files)."""
    ray = import_ray()
    return tempfile.TemporaryDirectory(prefix=prefix, dir=ray.get_runtime_context().get_temp_dir())


class RayExecutor:
    """Calls as Ray tasks (one CPU each), retried by Ray when their worker or node dies."""

    remote = True

    def __init__(self, ray: Any, started_here: bool = False):
        self._ray = ray
        resources = ray.cluster_resources()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.cpus = max(1, int(resources.get("CPU", 1)))
        self.where = {"executor": "ray", "address": ray.get_runtime_context().gcs_address, "nodes": len(nodes),
                      "cpus": self.cpus, "started_here": started_here}

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *, shared: Any = NOTHING,
            stop: Callable[[Any], bool] | None = None, done: Callable[[int, Any], None] | None = None,
            labels: Sequence[str] | None = None) -> Mapped:
        ray = self._ray
        task = ray.remote(_call).options(num_cpus=1, max_retries=RETRIES)
        with_shared = shared is not NOTHING
        ref = ray.put(shared) if with_shared else None  # once, whatever the number of tasks
        refs = [task.remote(fn, item, with_shared, ref) for item in items]
        where = {r: i for i, r in enumerate(refs)}
        results: dict[int, Any] = {}
        attempts: dict[int, int] = {}
        pending, upto, stopped = list(refs), 0, None
        try:
            while pending and stopped is None:
                ready, pending = ray.wait(pending, num_returns=1)
                for r in ready:
                    i = where[r]
                    attempts[i], results[i] = self._get(r, labels[i] if labels else f"call {i + 1}")
                    if done is not None:
                        done(i, results[i])
                while stopped is None and upto in results:
                    if stop is not None and stop(results[upto]):
                        stopped = upto
                    upto += 1
        finally:
            self._cancel(pending)
        n = len(items) if stopped is None else stopped + 1
        return Mapped([results[i] for i in range(n)], [attempts[i] for i in range(n)])

    def _get(self, ref: Any, label: str) -> tuple[int, Any]:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, BaseException):
                raise cause from None  # the task's own error, typed as raised (an InputError stays one)
            raise Int8Error(f"{label} failed on Ray: {exc}") from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
                ray.exceptions.OwnerDiedError, ray.exceptions.RaySystemError) as exc:
            raise Int8Error(f"{label}: its Ray worker was lost {RETRIES + 1} times, the last time with "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None

    def _cancel(self, pending: list[Any]) -> None:
        """Cancel what is left and wait until it has ended (a cancelled call may still be writing files)."""
        ray = self._ray
        for r in pending:
            ray.cancel(r)
        _, left = ray.wait(pending, num_returns=len(pending), timeout=1.0) if pending else ([], [])
        for r in left:  # a plain cancel can be lost (ray-project/ray#32954, #12080): end its worker instead
            ray.cancel(r, force=True)
        for r in pending:
            try:
                ray.get(r)
            except Exception:  # cancelled, or failed: either way it has ended
                pass


def _call(fn: Callable[..., Any], item: Any, with_shared: bool, shared: Any) -> tuple[int, Any]:
    """The Ray task: the call's result, and which attempt produced it (1 = the first)."""
    value = fn(shared, item) if with_shared else fn(item)
    return _attempt(), value


def _attempt() -> int:
    from ray._private.worker import global_worker  # Ray keeps the attempt number of the running task here

    return int(global_worker.core_worker.get_current_task_attempt_number()) + 1
