#!/usr/bin/env bash
# gVisor's netstack as xhttpd builds it: the packages xhttpd imports from
# gvisor.dev/gvisor at $VERSION, picked as `go mod vendor` picks them, with
# the patches in third_party/gvisor-patches/ applied. go.mod points
# gvisor.dev/gvisor at the result, third_party/gvisor.
#
#   third_party/gvisor.sh          regenerate third_party/gvisor
#   third_party/gvisor.sh -check   fail if third_party/gvisor is not what it
#                                  would generate (CI runs this)
#
# To move to another gVisor version: set VERSION, run this, check that each
# patch still applies and is still needed, and re-measure.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=v0.0.0-20260905035102-160fafc42237

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The module without the replace, vendored.
mkdir "$work/mod"
git ls-files -z -- ':!third_party/gvisor' | xargs -0 cp --parents -t "$work/mod"
(
	cd "$work/mod"
	go mod edit -dropreplace gvisor.dev/gvisor -require "gvisor.dev/gvisor@$VERSION"
	go mod tidy >/dev/null
	go mod vendor
)
src=$(cd "$work/mod" && go mod download -json "gvisor.dev/gvisor@$VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')

out="$work/gvisor"
cp -a "$work/mod/vendor/gvisor.dev/gvisor" "$out"
cp "$src/go.mod" "$src/go.sum" "$src/LICENSE" "$src/AUTHORS" "$out/"
chmod -R u+w "$out"
for p in third_party/gvisor-patches/*.patch; do
	(cd "$out" && git apply -p1 "$OLDPWD/$p")
done

if [ "${1:-}" = "-check" ]; then
	diff -r "$out" third_party/gvisor >/dev/null || {
		diff -r "$out" third_party/gvisor | head -40
		echo "third_party/gvisor differs from gVisor $VERSION with third_party/gvisor-patches applied; run third_party/gvisor.sh" >&2
		exit 1
	}
	exit 0
fi
rm -rf third_party/gvisor
cp -a "$out" third_party/gvisor
