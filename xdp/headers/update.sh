#!/usr/bin/env bash
# Refreshes the pinned libbpf headers from the system's libbpf-dev
# (Debian bookworm: libbpf 1.1.2). The build never reads /usr/include:
# steer.c sees only this folder, so the generated object does not depend
# on what the build machine happens to have installed.
set -euo pipefail
cd "$(dirname "$0")"
src=${LIBBPF_INCLUDE:-/usr/include/bpf}
for h in bpf_helpers.h bpf_helper_defs.h bpf_endian.h; do
	install -m 0644 "$src/$h" "$h"
done
