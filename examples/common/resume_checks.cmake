# refused_when_cut(<checkpoint> <program name> <command...>): the checkpoint cut in half, given to
# `<command...> --resume <cut copy>`, must be refused with stderr starting "<program name>: " and
# saying "decode error: checkpoint truncated" (the resume ctests of decopt-train and decopt-torch-train).
function(refused_when_cut checkpoint name)
  file(SIZE ${checkpoint} size)
  math(EXPR half "${size} / 2")
  set(cut ${checkpoint}.cut)
  file(REMOVE ${cut})
  execute_process(COMMAND ${CMAKE_COMMAND} -E copy ${checkpoint} ${cut})
  execute_process(COMMAND truncate -s ${half} ${cut} RESULT_VARIABLE truncate_rc)
  if(NOT truncate_rc EQUAL 0)
    message(FATAL_ERROR "truncate failed")
  endif()
  execute_process(COMMAND ${ARGN} --resume ${cut} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "^${name}: .*decode error: checkpoint truncated")
    message(FATAL_ERROR "a truncated checkpoint was not refused clearly (rc ${rc}): ${err}")
  endif()
endfunction()
