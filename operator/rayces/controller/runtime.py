"""Serialises reconciles per resource and brings them back when time, not an event, calls for it.

kopf delivers events (a SchemaMigration changed, one of our Jobs changed) on worker threads.
Two events for one resource must not reconcile at once, or both could create a Job: a lock per
resource sees to that. Some changes come with no event at all: a retry that falls due, a Secret
that appears. Each decision says when to look again (`requeue_after`); a resync thread does so,
and sweeps every resource now and then in case an event was lost. A reconcile that raises is
logged, counted and tried again after a growing delay, never in a hot loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from rayces.controller import metrics
from rayces.controller.cluster import PLURAL, SchemaMigrationCluster
from rayces.controller.jobs import GROUP, VERSION
from rayces.controller.kubeapi import ApiError

logger = logging.getLogger("rayces.operator")

Key = tuple[str, str]
#: Every resource is reconciled at least this often, events or not.
SWEEP_SECONDS = 300.0
_ERROR_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class _Decision(Protocol):
    @property
    def requeue_after(self) -> float | None: ...


class Reconciles(Protocol):
    """What a runtime drives: `SchemaMigrationCluster` or `OrganizationCluster`."""

    @property
    def api(self) -> Any: ...

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def reconcile(self, resource: Mapping[str, Any]) -> _Decision: ...


class Runtime:
    """Per-resource locks, due times and the resync thread, for one kind of resource.

    :param act_on_deleting: reconcile a resource being deleted too (it has a finalizer to run).
    """

    def __init__(
        self,
        cluster: SchemaMigrationCluster | Reconciles,
        namespaces: Sequence[str],
        *,
        kind: str = "SchemaMigration",
        plural: str = PLURAL,
        act_on_deleting: bool = False,
    ) -> None:
        self.cluster = cluster
        self.namespaces = tuple(namespaces)
        self.kind = kind
        self.plural = plural
        self.act_on_deleting = act_on_deleting
        self._locks: dict[Key, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._due: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reconciles = 0

    def _lock(self, key: Key) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def reconcile(self, namespace: str, name: str) -> None:
        """Reconcile one SchemaMigration now (waiting for a reconcile of it already running)."""
        key = (namespace, name)
        with self._lock(key):
            metrics.RECONCILES.labels(kind=self.kind).inc()
            self.reconciles += 1
            try:
                resource = self.cluster.get(namespace, name)
                deleting = (resource or {}).get("metadata", {}).get("deletionTimestamp")
                if resource is None or (deleting and not self.act_on_deleting):
                    self._due.pop(key, None)
                    return
                decision = self.cluster.reconcile(resource)
            except Exception as error:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = _ERROR_BACKOFF[min(failures, len(_ERROR_BACKOFF)) - 1]
                self._due[key] = time.monotonic() + delay
                metrics.RECONCILE_ERRORS.labels(kind=self.kind, error=type(error).__name__).inc()
                detail = error.message if isinstance(error, ApiError) else str(error)
                logger.error(
                    "reconcile failed; retrying in %.0fs: %s: %s",
                    delay,
                    type(error).__name__,
                    detail[:500],
                    extra={"object": f"{namespace}/{name}"},
                )
                return
            self._failures.pop(key, None)
            if decision.requeue_after is not None:
                self._due[key] = time.monotonic() + decision.requeue_after
            else:
                self._due[key] = time.monotonic() + SWEEP_SECONDS

    def forget(self, namespace: str, name: str) -> None:
        self._due.pop((namespace, name), None)

    def schedule(self, namespace: str, name: str) -> None:
        """Reconcile the resource on the resync thread soon (within half a second)."""
        self._due[(namespace, name)] = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="resync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def sweep(self) -> None:
        """Schedule every SchemaMigration of the watched namespaces (at start and now and then)."""
        for namespace in self.namespaces:
            try:
                listing: dict[str, Any] = self.cluster.api.request(
                    "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{self.plural}"
                )
            except ApiError as error:
                logger.error("cannot list %s in %s: %s", self.plural, namespace, error.message)
                continue
            for item in listing.get("items") or []:
                key = (namespace, str(item["metadata"]["name"]))
                self._due.setdefault(key, time.monotonic())

    def _loop(self) -> None:
        next_sweep = time.monotonic()
        while not self._stop.wait(0.5):
            now = time.monotonic()
            if now >= next_sweep:
                self.sweep()
                next_sweep = now + SWEEP_SECONDS
            for key, due in list(self._due.items()):
                if due <= now and not self._stop.is_set():
                    self._due.pop(key, None)
                    self.reconcile(*key)
