#!/usr/bin/env bash
# Builds the project's images with buildah (no Docker daemon, no registry) and keeps
# each as a docker archive that the local node imports into containerd.
#
#   hack/images.sh [NAME...]  build what changed (default: all), print a size table
#   hack/images.sh --list     print "<reference> <archive>" per built image (no build)
#
# NAME: base (Debian bookworm's Python 3.11 from Debian packages, via mmdebstrap),
# pause (the pod sandbox), operator, arena, vllm-router (images/<name>/Dockerfile,
# built on the local base). An image is rebuilt only when its inputs change.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE_ROOT="${ARENASTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arenastack}"
CACHE="$CACHE_ROOT/images"
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/arenastack/Chart.yaml)
ROUTER_VERSION=$(sed -n 's/^vllm-router==//p' requirements/inference.in)
BASE_REF=localhost/arenastack/python:3.11-bookworm
BASE_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates"
# Bump when the way images are made changes, so every archive is redone.
RECIPE=1

declare -A REF=(
  [base]=$BASE_REF
  [pause]=localhost/arenastack/pause:3.10
  [operator]=ghcr.io/arenastack/operator:$APP_VERSION
  [arena]=ghcr.io/arenastack/arena:$APP_VERSION
  [vllm-router]=ghcr.io/arenastack/vllm-router:$ROUTER_VERSION
)
# What each product image copies from the repository (besides its Dockerfile).
declare -A INPUTS=(
  [operator]="requirements/operator.in requirements/lock.txt operator/arenastack_operator"
  [arena]="requirements/arena.in requirements/lock.txt services/arena/arenastack_arena"
  [vllm-router]="requirements/inference.in requirements/lock.txt"
)
ALL=(base pause operator arena vllm-router)

die() { echo "images: $*" >&2; exit 1; }

# The archive of the current inputs: <name>-<hash>.tar; a marker says it is complete.
digest_of() {
  local name=$1
  {
    echo "recipe $RECIPE ${REF[$name]}"
    case "$name" in
      base) echo "bookworm $BASE_PACKAGES" ;;
      pause) sha256sum images/pause/pause.c images/pause/Dockerfile ;;
      *)
        # The base's own digest: a new base rebuilds everything on it.
        cat "$CACHE/base.current" 2>/dev/null || true
        sha256sum "images/$name/Dockerfile"
        # shellcheck disable=SC2086
        find ${INPUTS[$name]} -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
          | sort -z | xargs -0 sha256sum
        ;;
    esac
  } | sha256sum | cut -c1-16
}

archive_of() { echo "$CACHE/$1-$(digest_of "$1").tar"; }

if [[ "${1:-}" == "--list" ]]; then
  for name in "${ALL[@]}"; do
    [[ $name == base ]] && continue # only ever a build input, never run by a pod
    archive=$(archive_of "$name")
    [[ -f "$archive.ok" ]] && echo "${REF[$name]} $archive"
  done
  exit 0
fi

command -v buildah >/dev/null || die "buildah is missing: run \`make apt\`"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
START=$SECONDS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# pip inside RUN steps gets the machine's own index settings (pip config and PIP_*
# variables) and certificate bundle, mounted read-only for the build only.
pip_mounts() {
  python3 - "$WORK/pip.conf" <<'PY'
import os, subprocess, sys
lines = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                       text=True).stdout.splitlines()
settings = {}
for line in lines:
    key, _, value = line.partition("=")
    section, _, option = key.partition(".")
    if section.startswith(":"):  # ":env:" echoes PIP_* variables, read below
        continue
    settings.setdefault(section, {})[option] = value.strip().strip("'\"")
for var, value in os.environ.items():
    # A local wheel folder of the host is not inside the build.
    if var.startswith("PIP_") and var != "PIP_FIND_LINKS":
        settings.setdefault("global", {})[var[4:].lower().replace("_", "-")] = value
with open(sys.argv[1], "w") as out:
    for section, options in settings.items():
        out.write(f"[{section}]\n")
        out.writelines(f"{k} = {v}\n" for k, v in options.items())
        out.write("\n")
cert = settings.get("global", {}).get("cert")
print(f"-v {sys.argv[1]}:/etc/pip.conf:ro")
if cert and os.path.exists(cert):
    print(f"-v {cert}:{cert}:ro")
PY
}

finish() { # finish NAME ARCHIVE: export the image to its archive, drop older archives
  local name=$1 archive=$2
  rm -f "$CACHE/$name"-*.tar "$CACHE/$name"-*.tar.ok
  buildah push -q "${REF[$name]}" "docker-archive:$archive:${REF[$name]}" >/dev/null
  touch "$archive.ok"
}

build_base() {
  local archive=$1
  echo "images: base: Debian bookworm with $BASE_PACKAGES (mmdebstrap)" >&2
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: run \`make apt\`"
  mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
    bookworm "$WORK/rootfs.tar" >&2
  cp images/base/Dockerfile "$WORK/Dockerfile"
  buildah bud -q --layers=false -t "$BASE_REF" -f "$WORK/Dockerfile" "$WORK" >/dev/null
}

build_pause() {
  mkdir -p "$WORK/pause"
  gcc -static -Os -s -o "$WORK/pause/pause" images/pause/pause.c
  buildah bud -q -t "${REF[pause]}" -f images/pause/Dockerfile "$WORK/pause" >/dev/null
}

build_product() {
  local name=$1 mounts
  mounts=$(pip_mounts)
  # shellcheck disable=SC2086
  buildah bud -q --layers --network host $mounts --build-arg "BASE=$BASE_REF" \
    -t "${REF[$name]}" -f "images/$name/Dockerfile" "$ROOT" >/dev/null
}

names=("$@")
((${#names[@]})) || names=("${ALL[@]}")
# Products need the base first, and its digest names their archives.
[[ " ${names[*]} " =~ \ (operator|arena|vllm-router)\  ]] && [[ ! " ${names[*]} " =~ \ base\  ]] \
  && names=(base "${names[@]}")
for name in "${names[@]}"; do
  [[ -n "${REF[$name]:-}" ]] || die "unknown image '$name' (${ALL[*]})"
  archive=$(archive_of "$name")
  if [[ -f "$archive.ok" ]] && buildah inspect --type image "${REF[$name]}" >/dev/null 2>&1; then
    echo "images: $name cached" >&2
  else
    t0=$SECONDS
    case "$name" in
      base) build_base "$archive" ;;
      pause) build_pause ;;
      *) build_product "$name" ;;
    esac
    finish "$name" "$archive"
    echo "images: built $name in $((SECONDS - t0)) s" >&2
  fi
  [[ $name == base ]] && buildah inspect --type image -f '{{.FromImageID}}' "$BASE_REF" \
    >"$CACHE/base.current"
done

echo "images: ready in $((SECONDS - START)) s" >&2
for name in "${names[@]}"; do
  buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "${REF[$name]}" 2>/dev/null | head -1
done | awk '{printf "  %-48s %s %s\n", $1, $2, $3}' >&2
