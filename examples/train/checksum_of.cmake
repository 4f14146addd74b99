# checksum_of(<var> <command...>): runs a decopt-train command (with --json) and stores the
# model_checksum of its summary in <var>; fails the calling ctest script on error.
function(checksum_of out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${ARGN} failed (${rc}): ${err}")
  endif()
  string(REGEX MATCH "\"model_checksum\":\"([0-9a-f]+)\"" found "${out}")
  if(NOT found)
    message(FATAL_ERROR "no model_checksum in: ${out}")
  endif()
  set(${out_var} ${CMAKE_MATCH_1} PARENT_SCOPE)
endfunction()
