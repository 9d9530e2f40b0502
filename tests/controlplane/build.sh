#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kube-controller-manager)
# and the real test node's parts (kubelet, kube-scheduler, the pause program) from the Go
# modules pinned in go.mod, into a cache directory, and prints that directory on
# stdout. A later run with the same sources reuses the cache and
# builds nothing.
#
# Environment:
#   KUBEBUILDER_ASSETS       a directory of official envtest binaries; when set,
#                            it is checked and printed, and nothing is built.
#   RAYCES_CONTROLPLANE_DIR  where to put the binaries; defaults to
#                            ${XDG_CACHE_HOME:-$HOME/.cache}/rayces/controlplane/<k8s version>
#
# Progress goes to stderr, so `dir=$(bash tests/controlplane/build.sh)` works.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet pause)

log() { printf 'controlplane: %s\n' "$*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
    for required in etcd kube-apiserver; do
        if [[ ! -x "${KUBEBUILDER_ASSETS}/${required}" ]]; then
            log "KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS} has no executable ${required}"
            exit 1
        fi
    done
    log "using KUBEBUILDER_ASSETS, building nothing"
    printf '%s\n' "${KUBEBUILDER_ASSETS}"
    exit 0
fi

cd "${here}"
k8s_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
cache_root="${XDG_CACHE_HOME:-${HOME}/.cache}/rayces/controlplane"
out="${RAYCES_CONTROLPLANE_DIR:-${cache_root}/${k8s_version}}"

# The stamp names every input of the build, so a change to go.mod, go.sum,
# a main package or this script rebuilds instead of serving stale binaries.
stamp="$(cat go.mod go.sum cmd/*/main.go "${here}/build.sh" | sha256sum | cut -d' ' -f1)"
stamp="${stamp} $(go env GOVERSION)"

mkdir -p "${out}"
exec 9>"${out}/.lock"
flock 9

complete=1
for binary in "${binaries[@]}"; do
    [[ -x "${out}/${binary}" ]] || complete=0
done
if [[ "${complete}" == 1 && "$(cat "${out}/.stamp" 2>/dev/null)" == "${stamp}" ]]; then
    log "reusing ${out}"
    printf '%s\n' "${out}"
    exit 0
fi

# The same version stamp the Kubernetes release build writes
# (hack/lib/version.sh), so /version and `kubectl version` tell the truth.
major="${k8s_version#v}"
major="${major%%.*}"
minor="${k8s_version#v*.}"
minor="${minor%%.*}"
build_date="$(date -u ${SOURCE_DATE_EPOCH:+-d "@${SOURCE_DATE_EPOCH}"} +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for package in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X ${package}.gitVersion=${k8s_version}"
    ldflags+=" -X ${package}.gitMajor=${major}"
    ldflags+=" -X ${package}.gitMinor=${minor}"
    ldflags+=" -X ${package}.gitTreeState=clean"
    ldflags+=" -X ${package}.buildDate=${build_date}"
done

staging="$(mktemp -d "${out}/.build.XXXXXX")"
trap 'rm -rf "${staging}"' EXIT

log "building kubernetes ${k8s_version} and etcd ${etcd_version} into ${out}"
for binary in "${binaries[@]}"; do
    started=${SECONDS}
    CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${staging}/${binary}" "./cmd/${binary}"
    log "built ${binary} in $((SECONDS - started))s ($(du -h "${staging}/${binary}" | cut -f1))"
done

for binary in "${binaries[@]}"; do
    mv -f "${staging}/${binary}" "${out}/${binary}"
done
printf '%s\n' "${stamp}" >"${out}/.stamp"
printf '%s\n' "${out}"
