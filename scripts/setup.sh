#!/usr/bin/env bash
# Installs the Debian 12 packages sefar needs. Idempotent: when every package is already present it
# returns in well under a second and never touches the network; `apt-get update` runs only when a
# package is missing and the package lists are older than a day (or absent).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache
  libtorch-dev libgloo-dev libopenblas0-pthread
  libtbb-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg
  nlohmann-json3-dev libfmt-dev doctest-dev
  graphviz
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi

echo "setup: installing ${missing[*]}"
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
  $sudo apt-get update -q
fi
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: done"
