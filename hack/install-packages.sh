#!/usr/bin/env bash
# Installs the Debian packages the image build and the real test node need, when any is missing:
# buildah and debootstrap build the image, containerd and runc run its containers under the
# kubelet, shellcheck checks the shell scripts (make lint). Run as root (CI and developers'
# machines are root); prints nothing when all are there.
set -euo pipefail

packages=(buildah debootstrap containerd runc iproute2 util-linux shellcheck)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${package}" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("${package}")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ ${EUID} -ne 0 ]]; then
    printf 'install-packages: missing Debian packages %s; run this script as root\n' "${missing[*]}" >&2
    exit 1
fi
printf 'install-packages: installing %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
