#!/usr/bin/env bash
# Installs every Debian package cohortnet needs to build, test and draw figures.
# A no-op when they are all there. Needs root (or sudo); on clusters without root, load the
# site's PETSc/HDF5/MPI modules instead and skip this step (see README "On a cluster").
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libopenmpi-dev openmpi-bin
  petsc-dev libopenblas-dev libopenblas0-pthread
  libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev
  libgtest-dev googletest
  python3-numpy python3-h5py python3-matplotlib python3-scipy
  slurm-wlm munge            # the tests start a real single-node Slurm cluster
  time                       # bench/memory_estimate.sh measures peak memory with GNU time
  snakemake                  # workflows/Snakefile (docs/workflows.md) and its tests
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
