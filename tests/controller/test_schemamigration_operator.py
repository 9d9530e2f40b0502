"""SchemaMigration end to end: kubectl, the operator as its ServiceAccount, Jobs on the emulated
node running the real raycesctl against a real PostgreSQL database.

Each test uses its own database and Secret, and deletes its resource afterwards.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from tests.controller.operator_support import (
    DEPLOY_DIR,
    NAMESPACE,
    Cluster,
    OperatorProcess,
    applied,
    database_revision,
    head_revision,
    kubectl,
    schema_migration,
)

from rayces.migrations.embedded import temporary_database


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_samples_reach_ready_at_head(
    operator_cluster: Cluster, postgres_server_url: str, tmp_path: Path
) -> None:
    with temporary_database(postgres_server_url, prefix="sample") as url:
        secret = (DEPLOY_DIR / "samples" / "database-secret.yaml").read_text()
        secret = secret.replace("postgresql://USER:PASSWORD@HOST:5432/DATABASE", url)
        kubeconfig = operator_cluster.plane.kubeconfig
        kubectl(kubeconfig, "apply", "-f", "-", stdin=secret)
        kubectl(kubeconfig, "apply", "-f", str(DEPLOY_DIR / "samples" / "schemamigration.yaml"))
        try:
            kubectl(
                kubeconfig,
                "-n",
                NAMESPACE,
                "wait",
                "--for=condition=Ready",
                "schemamigration/booking",
                "--timeout=240s",
            )
            status = operator_cluster.status("booking")
            assert database_revision(url) == head_revision()
            assert status["currentRevision"] == head_revision()
            assert status["lastRun"]["outcome"] == "Succeeded"
            assert status["lastRun"]["toRevision"] == head_revision()
            assert len(status["lastRun"]["steps"]) == 17
            printed = kubectl(
                kubeconfig, "-n", NAMESPACE, "get", "schemamigration", "booking"
            ).stdout
            assert head_revision() in printed and "AtTargetRevision" in printed
        finally:
            operator_cluster.delete("booking")
