# decopt_cli_test(<name> PROGRAM <target> [EXPECT_FAIL] [REGEX <re>] [STDOUT_REGEX <re>]
#                 [ENVIRONMENT <VAR=value>...] [TIMEOUT <s>] [EXIT_CODE <n>] ARGS <arg>...)
# A ctest of a program's command line, run by examples/train/run_cli_check.cmake:
#   without EXPECT_FAIL — exit 0, and the last stdout line matches REGEX;
#   with EXPECT_FAIL    — a non-zero exit with exactly one line on stderr matching REGEX, and (when
#                         STDOUT_REGEX is given) a last stdout line matching it: what a run must
#                         still have printed before its late failure; EXIT_CODE <n>: exactly that exit.
# Every test gets a TIMEOUT (default 120 s): a hung program is a failed test.
function(decopt_cli_test name)
  cmake_parse_arguments(T "EXPECT_FAIL" "PROGRAM;REGEX;STDOUT_REGEX;TIMEOUT;EXIT_CODE" "ARGS;ENVIRONMENT" ${ARGN})
  if(T_EXPECT_FAIL)
    set(mode -DEXPECT_FAIL=ON "-DSTDERR_REGEX=${T_REGEX}")
    if(DEFINED T_STDOUT_REGEX)
      list(APPEND mode "-DSTDOUT_REGEX=${T_STDOUT_REGEX}")
    endif()
    if(DEFINED T_EXIT_CODE)
      list(APPEND mode "-DEXIT_CODE=${T_EXIT_CODE}")
    endif()
  else()
    set(mode "-DSTDOUT_REGEX=${T_REGEX}")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  string(REPLACE ";" "|" args "${T_ARGS}")  # run_cli_check.cmake splits on |
  add_test(NAME ${name}
    COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:${T_PROGRAM}> "-DARGS=${args}" ${mode}
            -P ${PROJECT_SOURCE_DIR}/examples/train/run_cli_check.cmake)
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT})
  if(T_ENVIRONMENT)
    set_tests_properties(${name} PROPERTIES ENVIRONMENT "${T_ENVIRONMENT}")
  endif()
endfunction()
