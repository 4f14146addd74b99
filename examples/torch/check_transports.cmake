# ctest helper: decopt-torch-train with 4 nodes must end with the same model_checksum on the
# simulated network, on threads and (when MPIEXEC is set) under mpirun -np 4, for decopt's local
# step (Malcom-PSGD, sync) and for torch::optim's (CHOCO-SGD with torch-adam, overlapped).
include(${TRAIN_DIR}/checksum_of.cmake)
set(common --nodes 4 --rounds 16 --train-samples 1000 --quiet --json)
foreach(variant "--algorithm;malcom" "--algorithm;choco;--local;torch-adam;--step;overlap")
  checksum_of(sim ${PROGRAM} ${common} ${variant} --transport sim)
  checksum_of(threads ${PROGRAM} ${common} ${variant} --transport threads)
  set(mpi ${sim})
  if(MPIEXEC)
    checksum_of(mpi ${MPIEXEC} -np 4 --allow-run-as-root --oversubscribe ${PROGRAM} ${common} ${variant} --transport mpi)
  endif()
  if(NOT sim STREQUAL threads OR NOT sim STREQUAL mpi)
    message(FATAL_ERROR "${variant}: model_checksum differs: sim ${sim}, threads ${threads}, mpi ${mpi}")
  endif()
  message(STATUS "${variant}: the transports agree on ${sim}")
endforeach()
