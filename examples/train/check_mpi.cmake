# ctest helper: decopt-train on 4 MPI ranks, on the simulated network and on threads must end with
# the same model_checksum for the same seed.
set(common --nodes 4 --rounds 12 --eval-every 6 --train-samples 2000 --hidden 32 --quiet --json)
include(${CMAKE_CURRENT_LIST_DIR}/checksum_of.cmake)
checksum_of(sim ${PROGRAM} ${common} --transport sim)
checksum_of(threads ${PROGRAM} ${common} --transport threads)
checksum_of(mpi ${MPIEXEC} -np 4 --allow-run-as-root --oversubscribe ${PROGRAM} ${common} --transport mpi)
if(NOT sim STREQUAL mpi OR NOT sim STREQUAL threads)
  message(FATAL_ERROR "model_checksum differs: sim ${sim}, threads ${threads}, mpi ${mpi}")
endif()
message(STATUS "sim, threads and mpirun -np 4 agree: ${sim}")
