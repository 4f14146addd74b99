# ctest helper (PROGRAM = decopt-train): --step async on the simulated network is event-driven on a
# virtual clock, so the same seed gives the same bits twice (here with one node 3x slower and k = 2),
# and with --max-staleness 0 and equal speeds it is --step sync bit for bit.
set(common --algorithm choco --nodes 4 --rounds 12 --train-samples 500 --hidden 16 --eval-every 6 --step-seconds 0.01 --quiet --json)
include(${CMAKE_CURRENT_LIST_DIR}/checksum_of.cmake)
checksum_of(first ${PROGRAM} ${common} --step async --max-staleness 2 --slow-node 1 --slow-factor 3)
checksum_of(second ${PROGRAM} ${common} --step async --max-staleness 2 --slow-node 1 --slow-factor 3)
if(NOT first STREQUAL second)
  message(FATAL_ERROR "--step async on sim gave ${first}, then ${second}")
endif()
checksum_of(k0 ${PROGRAM} ${common} --step async --max-staleness 0)
checksum_of(sync ${PROGRAM} ${common} --step sync)
if(NOT k0 STREQUAL sync)
  message(FATAL_ERROR "--step async --max-staleness 0 gave ${k0}, --step sync ${sync}")
endif()
if(k0 STREQUAL first)
  message(FATAL_ERROR "the slow node and k = 2 changed nothing (${first})")
endif()
message(STATUS "--step async on sim: the same bits twice (${first}); k = 0 = --step sync (${sync})")
