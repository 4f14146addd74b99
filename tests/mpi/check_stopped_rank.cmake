# ctest helper: runs mpi_stopped_rank MODE under mpirun -np 4, where rank 2 stops itself (SIGSTOP).
# Passes when the job ends by itself within the program's timeout (2 s) + 10 s, with a non-zero
# exit and stderr matching EXPECT (a TransportError naming the rank and what it waited for), and
# no process of the job is left behind (any found is continued and killed, and the test fails).
#   -DMPIEXEC=... -DPROGRAM=... -DMODE=round|collective|end -DEXPECT=<regex>
string(RANDOM LENGTH 16 ALPHABET abcdefghijklmnopqrstuvwxyz token)
set(token "stopped-rank-${MODE}-${token}")
string(TIMESTAMP start "%s")
execute_process(
  COMMAND ${MPIEXEC} -np 4 --allow-run-as-root --oversubscribe ${PROGRAM} ${MODE} ${token}
  TIMEOUT 40 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(TIMESTAMP end "%s")
math(EXPR seconds "${end} - ${start}")

execute_process(COMMAND pgrep -f ${token} OUTPUT_VARIABLE left OUTPUT_STRIP_TRAILING_WHITESPACE)
if(left)
  string(REPLACE "\n" ";" left "${left}")
  foreach(pid IN LISTS left)
    execute_process(COMMAND kill -CONT ${pid})
    execute_process(COMMAND kill -KILL ${pid})
  endforeach()
  message(FATAL_ERROR "processes left behind after the job ended (killed now): ${left}\nstderr:\n${err}")
endif()
# Open MPI 4.1's mpirun itself sometimes dies of SIGSEGV when several ranks call MPI_Abort at
# once ("Data unpack would read past end of buffer in show_help.c"); the job has ended all the
# same, so a signal is accepted here — only a timeout is a hang.
if(rc MATCHES "timeout")
  message(FATAL_ERROR "the job did not end by itself within 40 s (${rc})\nstderr:\n${err}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a non-zero exit, got 0\nstderr:\n${err}")
endif()
if(seconds GREATER 12)
  message(FATAL_ERROR "the job took ${seconds} s to end; the timeout is 2 s\nstderr:\n${err}")
endif()
if(NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "stderr does not match '${EXPECT}':\n${err}")
endif()
message(STATUS "ended in ${seconds} s (exit ${rc}) with the expected error")
