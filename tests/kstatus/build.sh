#!/usr/bin/env bash
# Builds tests/kstatus (a tiny command over sigs.k8s.io/cli-utils/pkg/kstatus, in its own Go
# module) into a cache directory and prints the binary's path on stdout. A later run with the
# same sources reuses it. RAYCES_KSTATUS_DIR overrides the directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v go >/dev/null || export PATH="${PATH}:/usr/local/go/bin"
cd "${here}"
stamp="$(cat go.mod go.sum main.go build.sh | sha256sum | cut -d' ' -f1) $(go env GOVERSION)"
out="${RAYCES_KSTATUS_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/rayces/kstatus}"
mkdir -p "${out}"
exec 9>"${out}/.lock"
flock 9
if [[ -x "${out}/kstatus" && "$(cat "${out}/.stamp" 2>/dev/null)" == "${stamp}" ]]; then
    printf '%s\n' "${out}/kstatus"
    exit 0
fi
printf 'kstatus: building into %s\n' "${out}" >&2
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${out}/kstatus.new" .
mv "${out}/kstatus.new" "${out}/kstatus"
printf '%s\n' "${stamp}" > "${out}/.stamp"
printf '%s\n' "${out}/kstatus"
