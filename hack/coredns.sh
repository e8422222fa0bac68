#!/usr/bin/env bash
# Builds CoreDNS for the local node's cluster DNS from the Go module proxy, with
# only the plugins devcluster/coredns/main.go names (no forwarder: nothing leaves the
# machine), into a cache outside the repository.
#
#   hack/coredns.sh          build if missing, print the binary's path
#   hack/coredns.sh --path   print the binary's path only (no build)
set -euo pipefail
COREDNS_VERSION=v1.14.7
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_ROOT="${ARENASTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arenastack}"
# The main file's hash is part of the folder name: a change of plugins rebuilds.
SUM=$(sha256sum "$HERE/../devcluster/coredns/main.go" | cut -c1-12)
DIR="$CACHE_ROOT/coredns/$COREDNS_VERSION-$SUM"
BIN="$DIR/coredns"
if [[ "${1:-}" == "--path" ]]; then echo "$BIN"; exit 0; fi
exec 3>&1 1>&2
mkdir -p "$DIR/src"
exec 9>"$DIR/.lock"
flock 9
if [[ -x "$BIN" && -f "$DIR/.ok" ]]; then echo "$BIN" >&3; exit 0; fi
command -v go >/dev/null || { echo "coredns: the Go toolchain is missing" >&2; exit 1; }
export GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
cp "$HERE/../devcluster/coredns/main.go" "$DIR/src/main.go"
cd "$DIR/src"
[[ -f go.mod ]] || printf 'module arenastack.local/coredns\n\ngo 1.25\n' >go.mod
t0=$SECONDS
go get "github.com/coredns/coredns@$COREDNS_VERSION" 2>go-get.log \
  || { echo "coredns: go get failed; see $DIR/src/go-get.log" >&2; exit 1; }
go build -trimpath -ldflags="-s -w" -o "$BIN" . || { echo "coredns: build failed" >&2; exit 1; }
touch "$DIR/.ok"
echo "coredns: built $COREDNS_VERSION in $((SECONDS - t0)) s"
echo "$BIN" >&3
