# ctest helper: decopt-train under mpirun -np 4 where rank 2 alone gets FLAG ODD (the others FLAG
# VALUE, or nothing when VALUE is empty). Every rank must stop at start-up — long before the 60 s
# --timeout — and the job must print exactly one "decopt-train:" line, matching EXPECT.
#   -DMPIEXEC=... -DPROGRAM=... -DFLAG=--levels -DVALUE= -DODD=16 -DEXPECT=<regex>
set(common --nodes 4 --train-samples 1000 --hidden 16 --quiet --json --transport mpi --timeout 60)
if(NOT FLAG STREQUAL "--rounds")
  list(APPEND common --rounds 12)
endif()
set(others ${common})
if(NOT VALUE STREQUAL "")
  list(APPEND others ${FLAG} ${VALUE})
endif()
string(TIMESTAMP start "%s")
execute_process(
  COMMAND ${MPIEXEC} --allow-run-as-root --oversubscribe -np 2 ${PROGRAM} ${others}
          : -np 1 ${PROGRAM} ${common} ${FLAG} ${ODD} : -np 1 ${PROGRAM} ${others}
  TIMEOUT 50 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(TIMESTAMP end "%s")
math(EXPR seconds "${end} - ${start}")
if(NOT rc MATCHES "^[0-9]+$" OR rc EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit, got '${rc}' after ${seconds} s\nstdout: ${out}\nstderr: ${err}")
endif()
if(seconds GREATER 20)
  message(FATAL_ERROR "took ${seconds} s: the ranks did not stop at start-up\nstderr: ${err}")
endif()
string(REGEX MATCHALL "decopt-train:[^\n]*" lines "${err}")
list(LENGTH lines count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "expected one decopt-train line on stderr, got ${count}:\n${err}")
endif()
if(NOT lines MATCHES "${EXPECT}")
  message(FATAL_ERROR "'${lines}' does not match '${EXPECT}'")
endif()
message(STATUS "stopped in ${seconds} s: ${lines}")
