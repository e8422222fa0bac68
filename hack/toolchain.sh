#!/usr/bin/env bash
# Builds the local control plane and its tools from pinned upstream releases,
# through the Go module proxy, into a cache outside the repository.
#
#   hack/toolchain.sh [PART...]  build what is missing, print the bin folder;
#                                PART: controlplane (etcd, Kubernetes with the kubelet, kwok, helm),
#                                monitoring (prometheus, promtool) or samples
#                                (KubeRay's sample manifests, the tests' compat
#                                corpus, in <bin>/../kuberay-samples) or anchors (KubeRay's
#                                operator and its CRDs: the differential tier and the
#                                benchmarks); default all four
#   hack/toolchain.sh --path     print the bin folder only (no build)
#
# Each tool gets its own wrapper module so that one tool's dependency versions
# never leak into another's build (minimal version selection across
# Kubernetes, Prometheus and Helm in one go.mod does not compile).
set -euo pipefail

# Pinned versions: changing any of them gives a new cache folder.
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.7.0
HELM_VERSION=v3.19.5
PROMETHEUS_VERSION=v0.313.5 # Prometheus 3.13.x as a Go module
KUBERAY_VERSION=v1.5.0      # the differential tier's and benchmarks' anchor, the tests' samples

# Bump RECIPE when the way binaries are built changes, so caches are redone.
RECIPE=3
VERSIONS="r${RECIPE}_k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}_prom-${PROMETHEUS_VERSION}"
CACHE_ROOT="${ARENASTACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arenastack}"
TOOLCHAIN="$CACHE_ROOT/toolchain/$VERSIONS"
BIN="$TOOLCHAIN/bin"

if [[ "${1:-}" == "--path" ]]; then
  echo "$BIN"
  exit 0
fi

die() { echo "toolchain: $*" >&2; exit 1; }
# Progress goes to stderr; stdout carries only the bin folder, for callers.
exec 3>&1 1>&2
need_go() {
  command -v go >/dev/null || die "the Go toolchain is missing: install Go 1.24 or newer and re-run"
}

mkdir -p "$BIN" "$TOOLCHAIN/src"
# One build at a time: concurrent callers (tests, the demo, helpers) wait here.
exec 9>"$TOOLCHAIN/.lock"
flock 9
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
START=$SECONDS

# A binary counts as built only once its marker exists, so a build that was
# interrupted (a corrupt cache) is redone rather than trusted.
built() {
  local name
  for name in "$@"; do
    [[ -x "$BIN/$name" && -f "$BIN/.$name.ok" ]] || return 1
  done
}

# wrapper NAME MODULE VERSION: a module that requires MODULE@VERSION
wrapper() {
  local dir="$TOOLCHAIN/src/$1"
  mkdir -p "$dir"
  if [[ ! -f "$dir/go.mod" ]] || ! grep -q "$2 $3" "$dir/go.mod"; then
    rm -f "$dir/go.mod" "$dir/go.sum"
    printf 'module arenastack.local/toolchain/%s\n\ngo 1.24\n' "$1" >"$dir/go.mod"
  fi
  echo "$dir"
}

# build NAME... : go build each listed package (given as name=package)
build() {
  local dir=$1; shift
  local pair name pkg t0
  for pair in "$@"; do
    name=${pair%%=*}; pkg=${pair#*=}
    if built "$name"; then
      echo "toolchain: $name cached"
      continue
    fi
    need_go
    t0=$SECONDS
    rm -f "$BIN/.$name.ok"
    (cd "$dir" && go build -trimpath -ldflags="-s -w ${LDFLAGS:-}" -o "$BIN/$name" "$pkg") \
      || die "building $name from $pkg failed (see the output above)"
    touch "$BIN/.$name.ok"
    echo "toolchain: built $name in $((SECONDS - t0)) s (total $((SECONDS - START)) s)"
  done
}

k8s_minor() { local m=${K8S_VERSION#v1.}; echo "${m%%.*}"; }

k8s() {
  built kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy kubelet && {
    echo "toolchain: kubernetes $K8S_VERSION cached"; return; }
  need_go
  local dir gomod staging
  dir=$(wrapper kubernetes k8s.io/kubernetes "$K8S_VERSION")
  # k8s.io/kubernetes points its staging modules at ./staging; replace each
  # with the twin published as v0.<minor>.<patch>.
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  staging="v0.${K8S_VERSION#v1.}"
  (
    cd "$dir"
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | while read -r m; do
      go mod edit -replace "$m=$m@$staging"
    done
    go get "k8s.io/kubernetes@$K8S_VERSION" 2>go-get.log || die "go get failed; see $dir/go-get.log"
  )
  # Without these the binaries report v0.0.0-master, and clients that check
  # the server version (helm's kubeVersion, kubectl's skew warning) refuse it.
  local minor
  minor=$(k8s_minor)
  local cb=k8s.io/component-base/version cg=k8s.io/client-go/pkg/version v
  LDFLAGS=""
  for v in "$cb" "$cg"; do
    LDFLAGS+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
    LDFLAGS+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  done
  build "$dir" \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
    kubectl=k8s.io/kubernetes/cmd/kubectl \
    kube-proxy=k8s.io/kubernetes/cmd/kube-proxy \
    kubelet=k8s.io/kubernetes/cmd/kubelet
  LDFLAGS=""
}

simple() { # simple WRAPPER MODULE VERSION name=pkg...
  local wname=$1 module=$2 version=$3; shift 3
  local names=() pair
  for pair in "$@"; do names+=("${pair%%=*}"); done
  built "${names[@]}" && { echo "toolchain: ${names[*]} cached"; return; }
  need_go
  local dir
  dir=$(wrapper "$wname" "$module" "$version")
  (cd "$dir" && go get "$module@$version" 2>go-get.log) || die "go get failed; see $dir/go-get.log"
  build "$dir" "$@"
}

# KubeRay's public sample manifests (ray-operator/config/samples/) at the pinned
# version: the RayCluster compat corpus of the tests (tests/compat_data.py), read
# from the module's source, never copied into this repository. Only that module
# is downloaded (no build, no dependencies); its own marker file, named after the
# version, so that a cache built before this part existed gets it cheaply.
kuberay_samples() {
  local dest="$TOOLCHAIN/kuberay-samples" module=github.com/ray-project/kuberay/ray-operator dir
  local mark="$dest/.kuberay-$KUBERAY_VERSION.ok"
  [[ -f "$mark" ]] && { echo "toolchain: kuberay $KUBERAY_VERSION samples cached"; return; }
  need_go
  dir=$(cd "$TOOLCHAIN/src" && go mod download -json "$module@$KUBERAY_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
    || die "downloading $module@$KUBERAY_VERSION failed (see the output above)"
  rm -rf "$dest"
  mkdir -p "$dest"
  cp "$dir"/config/samples/*.yaml "$dest/"
  chmod u+w "$dest/"*.yaml
  touch "$mark"
  echo "toolchain: kuberay $KUBERAY_VERSION samples in $dest"
}

parts=("$@")
((${#parts[@]})) || parts=(controlplane monitoring samples anchors)
for part in "${parts[@]}"; do
  case "$part" in
    controlplane)
      simple etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" etcd=go.etcd.io/etcd/server/v3
      k8s
      simple kwok sigs.k8s.io/kwok "$KWOK_VERSION" kwok=sigs.k8s.io/kwok/cmd/kwok
      # helm's default Kubernetes version (for `helm template` and `helm lint`)
      # is stamped at build time like its Makefile does; else it assumes 1.20.
      LDFLAGS="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
      LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(k8s_minor)"
      LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
      LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(k8s_minor)"
      LDFLAGS+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
      simple helm helm.sh/helm/v3 "$HELM_VERSION" helm=helm.sh/helm/v3/cmd/helm
      LDFLAGS=""
      ;;
    monitoring)
      simple prometheus github.com/prometheus/prometheus "$PROMETHEUS_VERSION" \
        prometheus=github.com/prometheus/prometheus/cmd/prometheus \
        promtool=github.com/prometheus/prometheus/cmd/promtool
      ;;
    samples)
      kuberay_samples
      ;;
    anchors)
      simple kuberay github.com/ray-project/kuberay/ray-operator "$KUBERAY_VERSION" \
        kuberay-operator=github.com/ray-project/kuberay/ray-operator
      # KubeRay's own CRDs, read from its module for the anchor run; never
      # copied into this repository.
      mkdir -p "$TOOLCHAIN/kuberay-crds"
      cp "$(cd "$TOOLCHAIN/src/kuberay" && go list -m -f '{{.Dir}}' \
        github.com/ray-project/kuberay/ray-operator)"/config/crd/bases/*.yaml "$TOOLCHAIN/kuberay-crds/"
      chmod u+w "$TOOLCHAIN/kuberay-crds/"*.yaml
      ;;
    *) die "unknown part '$part' (controlplane, monitoring, samples or anchors)" ;;
  esac
done

echo "toolchain: ready in $BIN ($((SECONDS - START)) s)"
echo "$BIN" >&3
