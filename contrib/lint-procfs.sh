#!/usr/bin/env bash
# Fails on a "/proc/self/..." or "/proc/thread-self/..." string literal in
# the runtime's non-test Go files (`make lint` runs it). The runtime reaches
# procfs through handles it verified (filepath-securejoin's procfs API,
# initproc's writeProcFile): once the init is in the container's mount
# namespace, a /proc path resolves in a /proc the image can fake or mount
# over (CVE-2019-16884, CVE-2025-52881). golangci-lint cannot say this:
# forbidigo matches identifiers, not string literals. A literal that is safe
# where it is used says why on its line: `// procfs-literal: <why>`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=${1:-runtime}
hits=$(grep -rnE --include='*.go' --exclude='*_test.go' \
	'["`]/proc/(self|thread-self)(/|["`])' "$dir" | grep -v '// procfs-literal: ' || true)
if [[ -n $hits ]]; then
	echo "lint-procfs: procfs path literals in $dir; open them through a verified procfs handle, or say why with // procfs-literal: <why>:" >&2
	echo "$hits" >&2
	exit 1
fi
