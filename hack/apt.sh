#!/usr/bin/env bash
# Installs the Debian packages listed in devcluster/apt-packages.txt that are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t want < <(grep -vE '^\s*(#|$)' devcluster/apt-packages.txt | awk '{print $1}')
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
echo "apt: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
