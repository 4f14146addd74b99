# Configures and installs decopt into WORK_DIR/prefix, then configures, builds and runs the
# consumer project CONSUMER_DIR against it with find_package(decopt), with the same C++ compiler.
# CONSUMER_PROGRAMS: the programs it builds, comma-separated (default: consumer); each must exit 0.
# Fails the ctest test on any error.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
endfunction()
if(NOT CONSUMER_PROGRAMS)
  set(CONSUMER_PROGRAMS consumer)
endif()
string(REPLACE "," ";" CONSUMER_PROGRAMS "${CONSUMER_PROGRAMS}")
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/decopt-build -DDECOPT_BUILD_TESTS=OFF
    -DDECOPT_BUILD_BENCHMARKS=OFF -DDECOPT_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/decopt-build)
run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${WORK_DIR}/consumer-build -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-build --parallel 2)
foreach(program IN LISTS CONSUMER_PROGRAMS)
  run(${WORK_DIR}/consumer-build/${program})
endforeach()
message(STATUS "installed decopt found and used by a consumer project (${CONSUMER_PROGRAMS})")
