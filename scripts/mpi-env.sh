# Sourced by the scripts: settings for running Open MPI on a workstation or CI machine.
# One BLAS thread per MPI rank (the HPC norm; ranks already use every core).
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# More ranks than cores on a small machine.
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
# Containers and CI often run as root; Open MPI refuses that unless told.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
