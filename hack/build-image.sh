#!/usr/bin/env bash
# Builds the project's image with buildah, without a Docker engine or an image registry, and
# exports it as an OCI archive that containerd imports. Prints the image name on stdout; progress
# and timings go to stderr, so `image=$(bash hack/build-image.sh)` works.
#
# The Dockerfile's base (`PYTHON_IMAGE`) is the official python image wherever a registry can be
# reached. Here none can, so the base is a local stand-in: Debian bookworm (debootstrap
# --variant=minbase) with Debian's python3, pip and venv. It has its own name
# (localhost/rayces-python-standin:3.11-bookworm) and never poses as the official image. It is
# built once and reused while this script and the suite are unchanged, as
# tests/controlplane/build.sh reuses its binaries.
#
# Everything buildah keeps (storage, containers.conf, registries, policy) lives in a private
# directory, never in the machine's global configuration:
#   - runc, because crun refuses hybrid cgroup hierarchies;
#   - default_ulimits nofile 20000 / nproc 32768, because the default rlimits are refused here;
#   - RUN steps use the host network (no CNI bridge, no firewall rules);
#   - the host's CA bundle and pip configuration are mounted read-only into the pip step as
#     build secrets, so pip works behind this machine's TLS setup, and neither ends up in a layer.
#
# Environment:
#   RAYCES_IMAGE_CACHE  the private directory; default ${XDG_CACHE_HOME:-$HOME/.cache}/rayces/image
#   RAYCES_IMAGE        the image name to build; default localhost/rayces-operator:dev
#   PYTHON_IMAGE        a base to use instead of the stand-in (it must be in the private storage)
#   DEBIAN_MIRROR       where debootstrap fetches packages; default: the first deb.debian.org-style
#                       URI of this machine's apt sources, else http://deb.debian.org/debian
set -euo pipefail

repository="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${RAYCES_IMAGE_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/rayces/image}"
image="${RAYCES_IMAGE:-localhost/rayces-operator:dev}"
standin="localhost/rayces-python-standin:3.11-bookworm"
suite=bookworm

log() { printf 'build-image: %s\n' "$*" >&2; }
timed() {
    local what="$1" started=${SECONDS}
    shift
    "$@"
    log "${what} took $((SECONDS - started))s"
}

bash "${repository}/hack/install-packages.sh"
for command in buildah debootstrap runc; do
    command -v "${command}" >/dev/null || { log "${command} is missing; run hack/install-packages.sh as root"; exit 1; }
done
if [[ ${EUID} -ne 0 ]]; then
    log "run as root: the stand-in base is made with debootstrap and buildah runs rootful here"
    exit 1
fi

mkdir -p "${cache}/storage" "${cache}/run" "${cache}/tmp"
exec 9>"${cache}/.lock"
flock 9

# The private configuration; rewritten every run so it always matches this script.
cat >"${cache}/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "${cache}/storage"
runroot = "${cache}/run"
CONF
cat >"${cache}/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat >"${cache}/registries.conf" <<CONF
# No registry is reachable here: images are local, and short names are never resolved.
unqualified-search-registries = []
CONF
cat >"${cache}/policy.json" <<CONF
{"default": [{"type": "insecureAcceptAnything"}]}
CONF
export CONTAINERS_STORAGE_CONF="${cache}/storage.conf"
export CONTAINERS_CONF="${cache}/containers.conf"
export CONTAINERS_REGISTRIES_CONF="${cache}/registries.conf"
export TMPDIR="${cache}/tmp"
buildah_flags=(--signature-policy "${cache}/policy.json")

# --- the stand-in base -----------------------------------------------------------------------
mirror="${DEBIAN_MIRROR:-}"
if [[ -z "${mirror}" ]]; then
    mirror="$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | head -n1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi

build_standin() {
    local rootfs="${cache}/standin-rootfs"
    rm -rf "${rootfs}"
    log "making the stand-in base: debootstrap --variant=minbase ${suite} from ${mirror}"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv \
        "${suite}" "${rootfs}" "${mirror}" >"${cache}/debootstrap.log" 2>&1 \
        || { tail -n 20 "${cache}/debootstrap.log" >&2; log "debootstrap failed (log: ${cache}/debootstrap.log)"; exit 1; }
    # What an image needs no more of: package lists and caches, logs, man pages.
    rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/* "${rootfs}"/var/cache/debconf/*-old \
        "${rootfs}"/var/log/* "${rootfs}"/usr/share/man/* "${rootfs}"/usr/share/doc/* "${rootfs}"/tmp/*
    local container mountpoint
    container="$(buildah "${buildah_flags[@]}" from scratch)"
    mountpoint="$(buildah mount "${container}")"
    tar -C "${rootfs}" -cf - . | tar -C "${mountpoint}" -xf -
    buildah umount "${container}" >/dev/null
    buildah config \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 \
        --label io.rayces.standin.stamp="${standin_stamp}" \
        --label io.rayces.standin.description="Debian ${suite} minbase with Debian's python3, pip and venv; a local stand-in, not the official python image" \
        --cmd python3 "${container}"
    buildah commit --quiet --rm "${container}" "${standin}" >/dev/null
    rm -rf "${rootfs}"
}

# The stand-in is rebuilt only when its recipe (the function above) or the suite changes.
standin_stamp="$({ declare -f build_standin; echo "${suite}"; } | sha256sum | cut -d' ' -f1)"
base="${PYTHON_IMAGE:-}"
if [[ -z "${base}" ]]; then
    base="${standin}"
    current="$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "io.rayces.standin.stamp"}}' "${standin}" 2>/dev/null || true)"
    if [[ "${current}" == "${standin_stamp}" ]]; then
        log "reusing the stand-in base ${standin}"
    else
        timed "the stand-in base" build_standin
    fi
fi

# --- the image -------------------------------------------------------------------------------
secrets=()
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && secrets+=(--secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt)
[[ -f /etc/pip.conf ]] && secrets+=(--secret id=pip.conf,src=/etc/pip.conf)

timed "buildah build ${image}" buildah build "${buildah_flags[@]}" \
    --quiet --layers --pull=false --network host \
    --build-arg PYTHON_IMAGE="${base}" \
    "${secrets[@]}" \
    --tag "${image}" --file "${repository}/Dockerfile" "${repository}" >/dev/null

# The archive is exported again only when the image changed (its ID is kept beside it).
archive="${cache}/rayces-operator.oci.tar"
image_id="$(buildah images --no-trunc --format '{{.ID}}' "${image}")"
if [[ -f "${archive}" && "$(cat "${archive}.id" 2>/dev/null)" == "${image_id} ${image}" ]]; then
    log "reusing ${archive}"
else
    rm -f "${archive}" "${archive}.id"
    timed "export to ${archive}" buildah push --quiet "${buildah_flags[@]}" "${image}" "oci-archive:${archive}:${image}"
    printf '%s %s\n' "${image_id}" "${image}" >"${archive}.id"
fi
# Sizes as buildah prints them ("402 MB"), in MB, so the layers above the base have a figure.
megabytes() {
    buildah images --format '{{.Size}}' "$1" | awk '{
        factor = ($2 == "GB") ? 1000 : ($2 == "kB") ? 0.001 : ($2 == "B") ? 0.000001 : 1
        printf "%.0f", $1 * factor }'
}
image_mb="$(megabytes "${image}")"
base_mb="$(megabytes "${base}")"
log "image ${image}: $(buildah images --format '{{.ID}}' "${image}") ${image_mb} MB, of which ${base_mb} MB is the base (${base}) and $((image_mb - base_mb)) MB the layers above it; $(du -h "${archive}" | cut -f1) as an archive"
printf '%s\n' "${image}"
