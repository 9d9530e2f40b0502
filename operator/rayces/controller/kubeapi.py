"""A thin JSON door onto the Kubernetes API, on top of the official client's connection.

The official `kubernetes` client brings authentication (kubeconfig, in-cluster token, client
certificates) and its connection pool; this module sends plain JSON through it and gets plain
dicts back, the same shapes the pure modules (`jobs`, `outcomes`, `schemamigration`) build and
read, without a round trip through the generated models. Every request is counted by verb and
resource, so a test or `/metrics` can say how many API calls a reconcile costs.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config

from rayces.controller import metrics

MERGE_PATCH = "application/merge-patch+json"
#: Ask for metadata only: the apiserver then never sends a Secret's data to the operator.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


class ApiError(Exception):
    """The API answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """In-cluster configuration when running in a Pod, else the kubeconfig (or $KUBECONFIG)."""
    configuration = client.Configuration()
    if kubeconfig is None:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except config.ConfigException:
            pass
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    return configuration


def _resource_of(path: str) -> str:
    parts = [part for part in path.split("?", maxsplit=1)[0].split("/") if part]
    if "namespaces" in parts:
        index = parts.index("namespaces")
        rest = parts[index + 2 :]
        if rest:
            return "/".join(rest[:1] + [part for part in rest[2:3]])
        return "namespaces"
    return parts[-1] if parts else ""


class KubeApi:
    """`request(method, path, ...)` → dict, counting each call."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self._lock = threading.Lock()
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()

    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request; return the decoded JSON answer.

        :raises ApiError: the API answered 4xx or 5xx.
        """
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method_, url, header_params, serialized, post_params = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        verb, resource = method.lower(), _resource_of(path)
        with self._lock:
            self.calls[(verb, resource)] += 1
        # Counted here, once per request: reconciles of several resources run at once.
        metrics.API_CALLS.labels(verb=verb, resource=resource).inc()
        try:
            response = self.api_client.call_api(
                method_, url, header_params=header_params, body=serialized, post_params=post_params
            )
            response.read()  # type: ignore[no-untyped-call]
        except client.ApiException as error:
            raise _api_error(error.status or 0, str(error.reason), error.body) from None
        data = response.data or b""
        status = int(response.status)
        if status >= 400:
            raise _api_error(status, str(response.reason), data)
        return json.loads(data) if data else {}


def _api_error(status: int, reason: str, body: Any) -> ApiError:
    message = ""
    try:
        document = json.loads(body) if body else {}
        message = str(document.get("message") or "")
    except (ValueError, TypeError, AttributeError):
        message = str(body or "")[:300]
    return ApiError(status, reason, message)
