"""The Ray executor: one Ray actor per plan worker, in placement groups, with restarts.

    executor.cluster()       ray.init (start here, or join --address auto / ray://...)
                             and read the alive nodes' CPU, GPU, NPU and memory
    place(plan, cluster)     the scheduler picks a node and device for every worker
    executor.start(placement)
                             reserve one placement group per worker group (PACK for a
                             colocation group, SPREAD for actor replicas), each bundle
                             pinned to the node the scheduler chose; start a `FragmentHost`
                             actor per worker; return a `RayRuntime` of `RayGroup`s

A `RayGroup` is the `WorkerGroup` the driver already knows: `call` runs a method on every
replica concurrently (`.remote` on all, then `ray.get` in replica order), so the same
algorithm code runs here and under `local`. The same arguments sent to several replicas
are put in the object store once (a weight broadcast is one flat buffer, not one copy
per actor).

Restarts: a host actor that dies (its process killed, its node lost) is restarted by
Ray up to `RayExecutor.max_restarts` times. It re-runs its constructor; then, when the
runtime knows the run's last checkpoint (`Runtime.saved_state`, set by the trainer), its
fragment replicas are given their state from it, otherwise they keep their initial state.
A call that failed because of the death is retried once the actor is back;
`RayRuntime.restarts()` counts restarts, and each is logged as a warning saying which
state the fragments came back with. (Actors get the next weight push either way; a
learner or buffer restored from the checkpoint has lost what it learned or stored since.)

Ray is imported lazily, so this module (and its registration as executor "ray") costs
nothing when Ray is not installed or not used.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import rlkit.dataflow.broadcast as broadcast
from rlkit.checkpoint import restore_call
from rlkit.dataflow.carry import Delivery
from rlkit.dataflow.distributed import ClusterWorker  # also registers the policies
from rlkit.dataflow.executor import (
    EXECUTORS,
    Executor,
    Pending,
    RemoteRole,
    Runtime,
    WorkerGroup,
    construct,
)
from rlkit.dataflow.graph import Edge
from rlkit.dataflow.plan import Plan
from rlkit.dataflow.scheduler import Cluster, Node, Placement, Slot
from rlkit.device import check_device_name, npu_available
from rlkit.errors import ConfigError, PlacementError, RLKitError, TrainingError

log = logging.getLogger("rlkit.dataflow.ray")

NODE_LABEL = "ray.io/node-id"
"""Ray's built-in node label; bundle label selectors on it pin bundles to nodes."""
MIN_CPU = 0.01
"""CPU share of a worker that asks for none (Ray refuses empty bundles)."""
T = TypeVar("T")
R = TypeVar("R")
Method = str | Callable[..., Any]
"""A role method's name, or a function of the host's roles (`FragmentHost.call`)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'rlkit[ray]' (or use --executor local)"
        ) from None
    return ray


class FragmentHost:
    """The Ray actor of one worker: constructs and holds that worker's fragment replicas.

    Construction errors are kept and raised by `ready()`, so that they reach the driver
    as the role's own exception (an RLKitError keeps its one-line message).
    """

    def __init__(
        self, members: list[tuple[str, int, type, dict[str, Any], str]], shared: bool = False
    ) -> None:
        self.incarnation = f"{os.getpid()}-{time.time_ns()}"
        self.roles: dict[tuple[str, int], Any] = {}
        self.error: BaseException | None = None
        try:
            if any(m[4] == "npu" for m in members):
                npu_available()  # imports torch_npu, which registers the "npu" device
            for fragment, replica, role, kwargs, device in members:
                self.roles[(fragment, replica)] = construct(role, kwargs, device, replica, shared)
        except Exception as e:  # raised again by ready(), on the driver's side
            self.error = e

    def ready(self) -> str:
        """This incarnation's id, once every replica is constructed."""
        if self.error is not None:
            raise self.error
        return self.incarnation

    def call(
        self, fragment: str, replica: int, method: Method, *args: Any, **kwargs: Any
    ) -> tuple[str, Any]:
        """`(incarnation, result)`: the incarnation tells the driver of silent restarts.

        `method` is a role method's name, or a function run as `method(roles, *args)`
        with `roles` mapping each fragment name to its replica `replica` in this host
        (`Runtime.run_together`)."""
        if self.error is not None:
            raise self.error
        if callable(method):
            together = {f: role for (f, i), role in self.roles.items() if i == replica}
            return self.incarnation, method(together, *args, **kwargs)
        return self.incarnation, getattr(self.roles[(fragment, replica)], method)(*args, **kwargs)

    def pid(self) -> int:
        return os.getpid()

    def where(self) -> dict[str, Any]:
        """Node id, pid and the accelerator ids Ray assigned to this process."""
        import ray

        context = ray.get_runtime_context()
        accelerators = {k: v for k, v in context.get_accelerator_ids().items() if v}
        return {"node_id": context.get_node_id(), "pid": os.getpid(), "accelerators": accelerators}

    def close(self) -> None:
        for role in self.roles.values():
            close = getattr(role, "close", None)
            if close is not None:
                close()


class Host:
    """The driver's handle on one host actor, and what it knows of its incarnations."""

    def __init__(self, worker: str, handle: Any, runtime: RayRuntime) -> None:
        self.worker, self.handle, self.runtime = worker, handle, runtime
        self.incarnation = ""

    def observe(self, incarnation: str) -> None:
        """Count a restart when the host answers from a new process."""
        if self.incarnation and incarnation != self.incarnation:
            self.runtime.count_restart(self)
        self.incarnation = incarnation

    def recover(self, error: Exception) -> None:
        """Wait until Ray has restarted the host (or give up), then note the new incarnation."""
        ray = _ray()
        deadline = time.monotonic() + self.runtime.recover_s
        while True:
            try:
                left = max(deadline - time.monotonic(), 0.1)
                incarnation = ray.get(self.handle.ready.remote(), timeout=left)
                break
            except ray.exceptions.ActorUnavailableError:  # restarting: ask again shortly
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                failure: Exception = TimeoutError(f"not back after {self.runtime.recover_s:g}s")
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
                failure = e
            raise TrainingError(
                f"worker {self.worker} died and was not restarted "
                f"(max_restarts={self.runtime.max_restarts}): {str(error).splitlines()[0]}; "
                "the last checkpoint is intact"
            ) from failure
        self.observe(incarnation)


class RayGroup(WorkerGroup):
    """The replicas of one fragment on Ray actors; calls run concurrently, results come
    back in replica order.

    `submit` returns Ray object refs and `collect` waits for them; an asynchronous policy
    can keep refs in flight between the two.
    """

    def __init__(self, name: str, hosts: list[Host], replicas: list[int]) -> None:
        self.name = name
        self.hosts, self.replicas = hosts, replicas
        self.size = len(hosts)

    def submit(
        self, method: Method, args: Sequence[tuple[Any, ...]], kwargs: dict[str, Any]
    ) -> list[Any]:
        """Start `method` on replica i with `args[i]`; one object ref per replica."""
        return [
            h.handle.call.remote(self.name, r, method, *a, **kwargs)
            for h, r, a in zip(self.hosts, self.replicas, args, strict=True)
        ]

    def collect(
        self,
        method: Method,
        args: Sequence[tuple[Any, ...]],
        kwargs: dict[str, Any],
        refs: list[Any],
    ) -> list[Any]:
        """Results of `submit`, in replica order; a call to a host that died is retried
        once Ray has restarted it. An RLKitError raised by a role reaches the caller as is."""
        ray = _ray()
        results = []
        for i, ref in enumerate(refs):
            host = self.hosts[i]
            for attempt in range(host.runtime.max_restarts + 1):
                try:
                    incarnation, value = ray.get(ref)
                    break
                except ray.exceptions.RayTaskError as e:
                    if isinstance(e.cause, RLKitError):
                        raise e.cause from None
                    raise
                except ray.exceptions.RayActorError as e:
                    if attempt == host.runtime.max_restarts:
                        raise TrainingError(
                            f"worker {host.worker} kept dying during {self.name}.{getattr(method, '__name__', method)}: "
                            f"{str(e).splitlines()[0]}"
                        ) from e
                    host.recover(e)
                    ref = host.handle.call.remote(
                        self.name, self.replicas[i], method, *args[i], **kwargs
                    )
            host.observe(incarnation)
            results.append(value)
        return results

    def _run(
        self, method: Method, args: Sequence[tuple[Any, ...]], kwargs: dict[str, Any]
    ) -> list[Any]:
        return self.collect(method, args, kwargs, self.submit(method, args, kwargs))

    def call(self, method: Method, *args: Any, **kwargs: Any) -> list[Any]:
        if self.size > 1:  # one copy in the object store for every replica
            ray = _ray()
            args = tuple(a if _is_small(a) else ray.put(a) for a in args)
        return self._run(method, [args] * self.size, kwargs)

    def call_each(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        return self._run(method, args, {})

    def call_async(self, method: str, *args: Any) -> Pending:
        """Submit `method` to every replica now; the replicas run while the driver goes on."""
        all_args = [args] * self.size
        refs = self.submit(method, all_args, {})
        return Pending(lambda: self.collect(method, all_args, {}, refs), refs)

    def call_one_async(self, replica: int, method: str, *args: Any) -> Pending:
        head = RayGroup(self.name, self.hosts[replica : replica + 1], [self.replicas[replica]])
        refs = head.submit(method, [args], {})
        return Pending(lambda: head.collect(method, [args], {}, refs)[0], refs)

    def share(self, value: Any) -> Any:
        return value if _is_small(value) else _ray().put(value)

    def wait_any(self, pendings: Sequence[Pending]) -> list[int]:
        ray = _ray()
        running = [r for p in pendings if not p.finished for r in p.refs]
        if running and len(running) == sum(len(p.refs) for p in pendings):  # none finished yet
            ray.wait(running, num_returns=1)
        done = set(ray.wait(running, num_returns=len(running), timeout=0)[0]) if running else set()
        return [i for i, p in enumerate(pendings) if p.finished or all(r in done for r in p.refs)]

    def one(self, method: Method, *args: Any, **kwargs: Any) -> Any:
        head = RayGroup(self.name, self.hosts[:1], self.replicas[:1])
        return head._run(method, [args], kwargs)[0]

    def pids(self) -> list[int]:
        """Process id of each replica's host (e.g. to kill one in a fault test)."""
        ray = _ray()
        return list(ray.get([h.handle.pid.remote() for h in self.hosts]))


def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """(True, fn's result) or (False, the exception it raised): a thread's outcome."""
    try:
        return True, fn(*args)
    except BaseException as e:  # re-raised in the driver by Pending.wait
        return False, e


def _is_small(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


class RayRuntime(Runtime):
    """A plan running on Ray: groups by fragment, the host actors and their placement
    groups, and a count of restarts."""

    def __init__(
        self,
        plan: Plan,
        placement: Placement,
        executor: RayExecutor,
        placement_groups: list[Any],
    ) -> None:
        super().__init__(plan, placement, {})
        self.executor = executor
        self.max_restarts = executor.max_restarts
        self.recover_s = executor.recover_s
        self.placement_groups = placement_groups
        self.hosts: dict[str, Host] = {}
        self._restarts = 0
        self.collective_min_bytes = executor.collective_min_bytes
        self.collective_bytes = 0
        """Bytes carried by collective broadcasts so far (what skipped the driver)."""
        self._formed: set[str] = set()
        self._broken: set[str] = set()
        """Broadcast edges whose group lost a member to a restart: object store from then on."""

    def concurrently(self, fn: Callable[..., T], *args: Any) -> Pending:
        """`fn(*args)` in a thread of the driver: its calls wait on other processes while
        the driver's own calls go on (see `Runtime.concurrently`)."""
        box: list[Any] = []
        thread = threading.Thread(target=lambda: box.append(_outcome(fn, *args)), daemon=True)
        thread.start()

        def wait() -> Any:
            thread.join()
            ok, value = box[0]
            if not ok:
                raise value
            return value

        return Pending(wait, poll=lambda: not thread.is_alive())

    def restarts(self) -> int:
        """Host actors restarted since the start (each death of a worker process counts once)."""
        return self._restarts

    def _broadcast(
        self, e: Edge[Any, R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Delivery[R]:
        """By the plan's transport: "reference" runs producer and consumer in their one
        process; "collective" broadcasts one flat buffer per dtype over the edge's gloo
        group (formed at its first use); the object store otherwise, and as the fallback
        for small or non-tensor payloads and after a member restarted (`broadcast.py`)."""
        how = self.plan.transport(e.name)
        src, dst = cast(RayGroup, self.groups[e.src]), cast(RayGroup, self.groups[e.dst])
        if how == "reference" and not kwargs:
            result = src.one(broadcast.relay, e.src, e.produce, args, e.dst, e.consume, e.extra)
            return Delivery(e, None, [], [result])
        collective = how == "collective" and not kwargs and e.name not in self._broken
        kind, payload = src.one(
            broadcast.stage, e.src, e.name, e.produce, args, collective, self.collective_min_bytes
        )
        if kind == "value":
            return self._deliver(e, [payload])
        if e.name not in self._formed:
            self._form_group(e)
        sender = src.call_one_async(0, cast(str, broadcast.send), e.name)
        results = dst.call(broadcast.receive, e.dst, e.name, payload, e.consume, e.extra)
        sender.wait()
        self.collective_bytes += payload.nbytes
        return Delivery(e, None, [], results)

    def _form_group(self, e: Edge[Any, Any]) -> None:
        """The source's replica 0 (rank 0) and every destination replica join edge `e`'s
        gloo group, concurrently."""
        src, dst = cast(RayGroup, self.groups[e.src]), cast(RayGroup, self.groups[e.dst])
        address = src.one(broadcast.rendezvous)
        world = dst.size + 1
        head = src.call_one_async(0, cast(str, broadcast.join), e.name, address, 0, world)
        dst._run(broadcast.join, [(e.name, address, r + 1, world) for r in range(dst.size)], {})
        head.wait()
        self._formed.add(e.name)

    def run_together(self, fragments: Sequence[str], fn: Callable[..., T], *args: Any) -> list[T]:
        size = self.plan.replicas[fragments[0]]
        shared = all(
            len({self.plan.worker_of(name, i).name for name in fragments}) == 1 for i in range(size)
        )
        if shared:  # one process holds each replica's roles: run there, replicas in parallel
            return cast(list[T], cast(RayGroup, self.groups[fragments[0]]).call(fn, *args))
        return [
            fn({name: RemoteRole(self.groups[name], i) for name in fragments}, *args)
            for i in range(size)
        ]

    def count_restart(self, host: Host) -> None:
        """Count a restart and give the worker's fragments their state from the last
        checkpoint (`saved_state`), if there is one; log what happened."""
        self._restarts += 1
        members = self.placement.slot(host.worker).worker.members
        for name in list(self._formed):  # the restarted process is in no group any more
            e = self._edges[name]
            if any(f in (e.src, e.dst) for f, _ in members):
                self._broken.add(name)
                log.warning("broadcast %s goes through the object store from now on", name)
        fragments = ", ".join(sorted({f for f, _ in members}))
        saved = self.saved_state() if self.saved_state is not None else None
        if saved is None or any(f not in saved for f, _ in members):
            log.warning(
                "worker %s was restarted (restart %d of the run); its fragments %s came back "
                "with their initial state",
                host.worker,
                self._restarts,
                fragments,
            )
            return
        ray = _ray()
        for fragment, replica in members:
            method, args = restore_call(saved[fragment][replica])
            ray.get(host.handle.call.remote(fragment, replica, method, *args))
        log.warning(
            "worker %s was restarted (restart %d of the run); its fragments %s came back "
            "with their state from the last checkpoint",
            host.worker,
            self._restarts,
            fragments,
        )

    def where(self) -> dict[str, dict[str, Any]]:
        """Worker name -> node id, pid and assigned accelerator ids, as Ray reports them."""
        ray = _ray()
        names = list(self.hosts)
        found = ray.get([self.hosts[n].handle.where.remote() for n in names])
        return dict(zip(names, found, strict=True))

    def shutdown(self) -> None:
        """Close the replicas, kill the host actors, release the placement groups; stop
        Ray only if this executor started it (never a cluster that was joined)."""
        ray = _ray()
        if ray.is_initialized():
            closing = [h.handle.close.remote() for h in self.hosts.values()]
            try:
                ray.get(closing, timeout=30)
            except Exception as e:  # a dead or stuck host must not block the shutdown
                log.warning("closing the workers: %s", str(e).splitlines()[0])
            for host in self.hosts.values():
                ray.kill(host.handle, no_restart=True)
            for pg in self.placement_groups:
                ray.util.remove_placement_group(pg)
        self.hosts.clear()
        self.placement_groups = []
        self.executor.stop_ray()


def init_ray(**kwargs: Any) -> None:
    """`ray.init(**kwargs)`, from a directory that cannot shadow the installed rlkit.

    Ray puts the driver's working directory on every worker's sys.path. Started from a
    source checkout of rlkit with a regular (non-editable) install, the checkout's
    `rlkit/` (without the compiled replay extension) would shadow the installed package
    in the workers. So when ./rlkit is not the rlkit this process imported, Ray is
    started from Ray's own temp directory instead.
    """
    import rlkit

    here = Path.cwd()
    mine = Path(rlkit.__file__).resolve().parent
    shadow = (here / "rlkit").is_dir() and (here / "rlkit").resolve() != mine
    if shadow:
        os.chdir(tempfile.gettempdir())
    try:
        _ray().init(**kwargs)
    finally:
        if shadow:
            os.chdir(here)


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Runs a placed plan on a Ray cluster: started here (`--address ""`, the default) or
    joined (`--address auto`, `--address ray://HOST:PORT`); a Ray already initialized in
    this process is used as it is."""

    max_restarts = 3
    """How often Ray restarts a dead worker process before the run fails."""
    reserve_s = 120.0
    """How long to wait for the placement groups before refusing the plan."""
    recover_s = 120.0
    """How long to wait for a dead worker to come back."""
    collective_min_bytes = broadcast.MIN_BYTES
    """Broadcast payloads below this go through the object store (`broadcast.py`)."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._node_ids: dict[str, str] = {}
        self._temp_dir: str | None = None

    # -- the cluster ----------------------------------------------------------------
    def connect(self) -> None:
        """ray.init unless Ray is up in this process already."""
        ray = _ray()
        if ray.is_initialized():
            return
        address = str(getattr(self.config, "address", "") or "")
        if address:
            try:
                init_ray(address=address, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(
                    f"--address {address}: cannot join a Ray cluster ({str(e).splitlines()[0]}); "
                    "start one with `ray start --head`, or leave --address empty to start one here"
                ) from None
            return
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private, local cluster
        self._temp_dir = tempfile.mkdtemp(prefix="rlkit-ray-", dir="/tmp")  # short: socket paths
        init_ray(
            include_dashboard=False,
            logging_level=logging.WARNING,
            _temp_dir=self._temp_dir,
        )
        atexit.register(self.stop_ray)  # e.g. `rlkit plan`, which starts nothing to shut down

    def stop_ray(self) -> None:
        """ray.shutdown() if `connect` started Ray here; otherwise leave it running."""
        if self._temp_dir is None:
            return
        ray = _ray()
        ray.shutdown()
        shutil.rmtree(self._temp_dir, ignore_errors=True)
        self._temp_dir = None

    def cluster(self) -> Cluster:
        """The alive nodes and their CPU, GPU, NPU and memory, CPU-only nodes first (so
        first-fit placement leaves accelerator nodes to the workers that need them)."""
        self.connect()
        ray = _ray()
        nodes: list[tuple[tuple[bool, bool, str], Node]] = []
        self._node_ids = {}
        for info in ray.nodes():
            if not info.get("Alive"):
                continue
            res = info.get("Resources", {})
            node_id = info["NodeID"]
            name = (
                f"{info.get('NodeManagerHostname') or info.get('NodeManagerAddress')}-{node_id[:6]}"
            )
            self._node_ids[name] = node_id
            node = Node(
                name,
                cpus=float(res.get("CPU", 0.0)),
                gpus=float(res.get("GPU", 0.0)),
                npus=float(res.get("NPU", 0.0)),
                memory_gb=float(res.get("memory", 0.0)) / 2**30,
            )
            accel = bool(node.gpus or node.npus)
            head = "node:__internal_head__" in res
            nodes.append(((accel, not head, node_id), node))
        if not nodes:
            raise PlacementError("the Ray cluster has no alive node")
        return Cluster([n for _, n in sorted(nodes, key=lambda x: x[0])])

    def check_device(self, device: str) -> None:
        """The cluster decides (the scheduler refuses a GPU learner on a GPU-less
        cluster); here only the name is checked."""
        check_device_name(device)

    # -- starting a plan --------------------------------------------------------------
    def start(self, placement: Placement) -> RayRuntime:
        """Reserve the placement groups, start a host actor per worker, wait until every
        replica is built; a failure on the way releases what was taken."""
        _send_plugins_by_value()
        if not self._node_ids:
            self.cluster()
        pgs, bundle_of = self.reserve(placement)
        runtime = RayRuntime(placement.plan, placement, self, pgs)
        try:
            self.start_hosts(runtime, bundle_of)
        except BaseException:
            runtime.shutdown()
            raise
        return runtime

    def reserve(self, placement: Placement) -> tuple[list[Any], dict[str, tuple[Any, int]]]:
        """One placement group per worker group, each bundle pinned to the node the
        scheduler chose; the groups, and each worker's (group, bundle index)."""
        ray = _ray()
        groups: dict[str, list[Slot]] = {}
        for slot in placement.slots:
            w = slot.worker
            key = w.group if isinstance(w, ClusterWorker) and w.group else w.name
            groups.setdefault(key, []).append(slot)
        run = uuid.uuid4().hex[:8]
        pgs, bundle_of = [], {}
        for key, slots in groups.items():
            first = slots[0].worker
            strategy = first.strategy if isinstance(first, ClusterWorker) else "PACK"
            pg = ray.util.placement_group(
                [_bundle(s) for s in slots],
                strategy=strategy,
                name=f"rlkit-{run}-{key}",
                bundle_label_selector=[{NODE_LABEL: self._node_ids[s.node]} for s in slots],
            )
            pgs.append(pg)
            for i, s in enumerate(slots):
                bundle_of[s.worker.name] = (pg, i)
        return pgs, bundle_of

    def start_hosts(self, runtime: RayRuntime, bundle_of: dict[str, tuple[Any, int]]) -> None:
        """Wait for the reservation, start the host actors in their bundles, wait until they
        built their replicas (a role's RLKitError reaches the caller as itself), and give
        the runtime a `RayGroup` per fragment."""
        ray = _ray()
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        plan, placement = runtime.plan, runtime.placement
        try:
            ray.get([pg.ready() for pg in runtime.placement_groups], timeout=self.reserve_s)
        except ray.exceptions.GetTimeoutError:
            raise PlacementError(
                f"Ray could not reserve the plan's resources within {self.reserve_s:g}s "
                "(other jobs may hold them): free the cluster, use fewer --actors or add nodes"
            ) from None
        host_cls = ray.remote(FragmentHost)
        for slot in placement.slots:
            w = slot.worker
            pg, index = bundle_of[w.name]
            bundle = _bundle(slot)
            members = [
                (f, i, plan.fragment(f).role, plan.fragment(f).kwargs, placement.device_of(f, i))
                for f, i in w.members
            ]
            handle = host_cls.options(
                num_cpus=bundle["CPU"],
                num_gpus=bundle.get("GPU", 0),
                resources={"NPU": bundle["NPU"]} if "NPU" in bundle else None,
                max_restarts=self.max_restarts,
                max_task_retries=0,  # retried by RayGroup, which counts restarts
                scheduling_strategy=PlacementGroupSchedulingStrategy(pg, index),
            ).remote(members, w.shared_device)
            runtime.hosts[w.name] = Host(w.name, handle, runtime)
        names = list(runtime.hosts)
        try:
            ready = ray.get([runtime.hosts[n].handle.ready.remote() for n in names])
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, RLKitError):
                raise e.cause from None
            raise
        for name, incarnation in zip(names, ready, strict=True):
            runtime.hosts[name].incarnation = incarnation
        for name in plan.graph.fragments:
            count = plan.replicas[name]
            hosts = [runtime.hosts[plan.worker_of(name, i).name] for i in range(count)]
            runtime.groups[name] = RayGroup(name, hosts, list(range(count)))


def _send_plugins_by_value() -> None:
    """Algorithms loaded from a file (`rlkit run file.py:Class`) live in a module only this
    process has: their classes go to the workers by value, not by reference."""
    from ray import cloudpickle

    from rlkit.registry import FILE_MODULE_PREFIX

    for name, module in list(sys.modules.items()):
        if name.startswith(FILE_MODULE_PREFIX):
            cloudpickle.register_pickle_by_value(module)


def _bundle(slot: Slot) -> dict[str, float]:
    """What one worker reserves: its CPU share and, on an accelerator, its device share."""
    w = slot.worker
    bundle = {"CPU": max(w.cpus, MIN_CPU)}
    if slot.device == "gpu":
        bundle["GPU"] = w.gpus or 1.0
    elif slot.device == "npu":
        bundle["NPU"] = w.gpus or 1.0
    return bundle
