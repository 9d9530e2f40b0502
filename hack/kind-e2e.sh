#!/usr/bin/env bash
# The operator end to end on a kind cluster, for people with Docker (untested on the machine the
# project is developed on, which has no Docker; `make lint` checks this script with shellcheck).
#
#   bash hack/kind-e2e.sh            # creates cluster "rayces", or reuses it
#   KIND_CLUSTER=mine bash hack/kind-e2e.sh
#   kind delete cluster --name rayces   # when done
#
# Needs docker, kind and kubectl on PATH. It:
#   1. creates a kind cluster;
#   2. builds the image (docker build) and loads it into the cluster's node;
#   3. runs PostgreSQL in the cluster (the official image, one StatefulSet);
#   4. applies deploy/ and the samples (a database Secret, a SchemaMigration, two Organizations);
#   5. waits for Ready and prints `kubectl get schemamigration,org`.
set -euo pipefail

cluster="${KIND_CLUSTER:-rayces}"
image="${RAYCES_IMAGE:-ghcr.io/rayces/rayces-operator:0.1.0}"
namespace=raycesv3
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
password="${POSTGRES_PASSWORD:-rayces-e2e}"

for tool in docker kind kubectl; do
    if ! command -v "${tool}" >/dev/null 2>&1; then
        printf 'kind-e2e: %s is not on PATH; install it first\n' "${tool}" >&2
        exit 1
    fi
done

step() { printf '\n== %s\n' "$*" >&2; }

step "kind cluster ${cluster}"
if ! kind get clusters | grep -qx "${cluster}"; then
    kind create cluster --name "${cluster}" --wait 120s
fi
kubectl config use-context "kind-${cluster}" >/dev/null

step "image ${image}"
docker build -t "${image}" "${root}"
kind load docker-image --name "${cluster}" "${image}"

step "namespace, CRDs and the operator (deploy/)"
kubectl apply -k "${root}/deploy"
kubectl -n "${namespace}" set image deployment/rayces-operator "operator=${image}"
kubectl -n "${namespace}" set env deployment/rayces-operator "RAYCES_JOB_IMAGE=${image}"

step "PostgreSQL (postgres:16, one StatefulSet)"
kubectl -n "${namespace}" apply -f - <<YAML
apiVersion: v1
kind: Service
metadata:
  name: postgres
spec:
  selector: {app: postgres}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: postgres
spec:
  serviceName: postgres
  replicas: 1
  selector:
    matchLabels: {app: postgres}
  template:
    metadata:
      labels: {app: postgres}
    spec:
      containers:
        - name: postgres
          image: postgres:16
          env:
            - {name: POSTGRES_USER, value: rayces}
            - {name: POSTGRES_PASSWORD, value: "${password}"}
            - {name: POSTGRES_DB, value: rayces}
          ports: [{containerPort: 5432}]
          readinessProbe:
            exec: {command: [pg_isready, -U, rayces]}
            periodSeconds: 2
YAML
kubectl -n "${namespace}" rollout status statefulset/postgres --timeout=300s

step "samples: the database Secret, a SchemaMigration, two Organizations"
kubectl -n "${namespace}" create secret generic rayces-database \
    --from-literal="DATABASE_URL=postgresql://rayces:${password}@postgres:5432/rayces" \
    --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f "${root}/deploy/samples/schemamigration.yaml"
kubectl apply -f "${root}/deploy/samples/organization.yaml"
kubectl apply -f "${root}/deploy/samples/second-organization.yaml"
kubectl -n "${namespace}" rollout status deployment/rayces-operator --timeout=300s

step "waiting for Ready"
kubectl -n "${namespace}" wait --for=condition=Ready schemamigration/booking --timeout=600s
kubectl -n "${namespace}" wait --for=condition=Ready organization --all --timeout=600s
kubectl -n "${namespace}" get schemamigration,org
