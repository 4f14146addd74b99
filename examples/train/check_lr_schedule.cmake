# ctest helper (PROGRAM = decopt-train): --lr-schedule cosine gives the same bits on the simulated
# network and on threads (every node sets round t's rate before its round), changes the run (the
# schedule is applied), and --lr-schedule constant is the run without the flag, bit for bit.
set(common --nodes 4 --rounds 6 --train-samples 500 --hidden 16 --eval-every 3 --quiet --json)
include(${CMAKE_CURRENT_LIST_DIR}/checksum_of.cmake)
checksum_of(cosine_sim ${PROGRAM} ${common} --lr-schedule cosine --lr-min 0.01)
checksum_of(cosine_threads ${PROGRAM} ${common} --lr-schedule cosine --lr-min 0.01 --transport threads)
if(NOT cosine_sim STREQUAL cosine_threads)
  message(FATAL_ERROR "--lr-schedule cosine: sim gave ${cosine_sim}, threads ${cosine_threads}")
endif()
checksum_of(plain ${PROGRAM} ${common})
if(plain STREQUAL cosine_sim)
  message(FATAL_ERROR "--lr-schedule cosine gave the constant-rate model: the schedule was not applied")
endif()
checksum_of(constant ${PROGRAM} ${common} --lr-schedule constant)
if(NOT constant STREQUAL plain)
  message(FATAL_ERROR "--lr-schedule constant gave ${constant}, the same run without it ${plain}")
endif()
message(STATUS "cosine: sim = threads (${cosine_sim}) != constant; --lr-schedule constant = no flag (${plain})")
