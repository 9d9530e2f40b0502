"""What the emulated node runs for a container: its argv, its environment, its message file.

A kubelet turns a container spec into a process: it resolves `env` and `envFrom` (literal
values, Secret and ConfigMap keys, the Pod's own fields), expands `$(VAR)` references in
values, command and args, and gives the container a file whose content becomes the
termination message. These functions do the same for a process on this machine. They are
pure — Secrets and ConfigMaps come in through lookup callables — so they are tested without
a server. Where this machine differs from a container (no image filesystem, so no image
entrypoint and no `/dev/termination-log`), the difference is made explicit here.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubernetes import client

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT_BYTES = 4096
"""kubelet keeps at most 4096 bytes of one container's termination message."""
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
"""With FallbackToLogsOnError, kubelet uses the log's last 80 lines or 2048 bytes."""

DataLookup = Callable[[str, str], Mapping[str, str] | None]
"""(namespace, name) -> the object's data as text, or None when it does not exist."""


class ContainerConfigError(RuntimeError):
    """The container cannot start yet (kubelet's CreateContainerConfigError)."""


@dataclass(frozen=True)
class ObjectStore:
    """Where the emulator reads the Secrets and ConfigMaps a container refers to."""

    secret: DataLookup
    config_map: DataLookup


_REFERENCE = re.compile(r"\$(\$|\(([^)]*)\))")


def expand_references(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes a `$`.

    An undefined `$(VAR)` stays as written, as kubelet leaves it.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name = match.group(2)
        return variables.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def decode_secret_data(data: Mapping[str, bytes | str] | None) -> dict[str, str]:
    """Secret `data` values arrive base64-encoded; containers see the decoded text."""
    return {
        key: (value if isinstance(value, bytes) else base64.b64decode(value)).decode()
        for key, value in (data or {}).items()
    }


@dataclass(frozen=True)
class KeyReference:
    """One key of one Secret or ConfigMap, as `secretKeyRef` and `configMapKeyRef` name it."""

    kind: str
    namespace: str
    name: str
    key: str
    optional: bool


def _keyed_value(reference: KeyReference, lookup: DataLookup) -> str | None:
    kind, namespace, name, key = (
        reference.kind,
        reference.namespace,
        reference.name,
        reference.key,
    )
    optional = reference.optional
    data = lookup(namespace, name)
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


_LABEL_OR_ANNOTATION = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def field_value(pod: client.V1Pod, path: str) -> str:
    """The value a `fieldRef` names, for the fields a batch container uses."""
    metadata = pod.metadata or client.V1ObjectMeta()
    spec = pod.spec
    simple = {
        "metadata.name": metadata.name,
        "metadata.namespace": metadata.namespace,
        "metadata.uid": metadata.uid,
        "spec.nodeName": spec.node_name if spec else None,
        "spec.serviceAccountName": spec.service_account_name if spec else None,
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return simple[path] or ""
    match = _LABEL_OR_ANNOTATION.fullmatch(path)
    if match:
        values = metadata.labels if match.group(1) == "labels" else metadata.annotations
        return (values or {}).get(match.group(2), "")
    raise ContainerConfigError(f"fieldRef {path!r} is not emulated by the test node")


def _env_var_value(
    pod: client.V1Pod, var: client.V1EnvVar, store: ObjectStore, resolved: Mapping[str, str]
) -> str | None:
    namespace = (pod.metadata.namespace if pod.metadata else None) or "default"
    source = var.value_from
    if source is None:
        return expand_references(var.value or "", resolved)
    if source.secret_key_ref is not None:
        secret = source.secret_key_ref
        reference = KeyReference(
            "Secret", namespace, secret.name or "", secret.key, bool(secret.optional)
        )
        return _keyed_value(reference, store.secret)
    if source.config_map_key_ref is not None:
        config_map = source.config_map_key_ref
        reference = KeyReference(
            "ConfigMap",
            namespace,
            config_map.name or "",
            config_map.key,
            bool(config_map.optional),
        )
        return _keyed_value(reference, store.config_map)
    if source.field_ref is not None:
        return field_value(pod, source.field_ref.field_path)
    raise ContainerConfigError(
        f"env {var.name}: only literal values, secretKeyRef, "
        "configMapKeyRef and fieldRef are emulated by the test node"
    )


def _env_from_values(
    namespace: str, source: client.V1EnvFromSource, store: ObjectStore
) -> dict[str, str]:
    prefix = source.prefix or ""
    if source.secret_ref is not None:
        kind, name, optional = "Secret", source.secret_ref.name, source.secret_ref.optional
        data = store.secret(namespace, name or "")
    elif source.config_map_ref is not None:
        config_map = source.config_map_ref
        kind, name, optional = "ConfigMap", config_map.name, config_map.optional
        data = store.config_map(namespace, name or "")
    else:
        return {}
    if data is None:
        if optional:
            return {}
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    return {prefix + key: value for key, value in data.items()}


def container_environment(
    pod: client.V1Pod, container: client.V1Container, store: ObjectStore
) -> dict[str, str]:
    """The variables kubelet would set from `envFrom` then `env` (later entries win)."""
    namespace = (pod.metadata.namespace if pod.metadata else None) or "default"
    environment: dict[str, str] = {}
    for source in container.env_from or []:
        environment.update(_env_from_values(namespace, source, store))
    for var in container.env or []:
        value = _env_var_value(pod, var, store, environment)
        if value is not None:
            environment[var.name] = value
    return environment


def termination_message_path(container: client.V1Container) -> str:
    return container.termination_message_path or DEFAULT_TERMINATION_MESSAGE_PATH


def container_argv(
    container: client.V1Container, environment: Mapping[str, str], message_file: str
) -> list[str]:
    """command + args with `$(VAR)` expanded and the message path mapped to `message_file`.

    The emulator cannot read an image's entrypoint, so a container without `command` is
    refused. The container's terminationMessagePath does not exist on this machine; every
    occurrence of it in command, args (and, by the caller, env values) is rewritten to a
    per-Pod file, so `sh -c 'echo done > /dev/termination-log'` and
    `--message-file=/dev/termination-log` both work unchanged.
    """
    if not container.command:
        raise ContainerConfigError(
            f"container {container.name} has no command; the test node cannot read an image's "
            "entrypoint, so Pods it runs must name their command"
        )
    path = termination_message_path(container)
    words = [*container.command, *(container.args or [])]
    return [expand_references(word, environment).replace(path, message_file) for word in words]


def map_message_path(
    environment: Mapping[str, str], container: client.V1Container, message_file: str
) -> dict[str, str]:
    """Environment values with the termination message path rewritten, as in the argv."""
    path = termination_message_path(container)
    return {name: value.replace(path, message_file) for name, value in environment.items()}


def termination_message(
    message_file_content: bytes, log_tail: bytes, exit_code: int, policy: str | None
) -> str:
    """The message kubelet reports: the file, else (on failure, if asked) the log's tail."""
    message = message_file_content[:TERMINATION_MESSAGE_LIMIT_BYTES]
    if not message.strip() and exit_code != 0 and policy == "FallbackToLogsOnError":
        lines = log_tail.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
        message = b"".join(lines)[-FALLBACK_LOG_BYTES:]
    return message.decode(errors="replace")
