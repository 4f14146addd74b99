# decopt_train_runs: decopt-train's run_experiment (train/run_experiment.cpp; --algorithm sgp in
# train/push_sum_run.cpp), compiled once per build for the program and for the train tests. With
# MPI (outside the sanitizer build, where Open
# MPI's own allocations trip LeakSanitizer) it drives the mpi transport too.
if(TARGET decopt_train_runs)
  return()
endif()
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
add_library(decopt_train_runs STATIC ${PROJECT_SOURCE_DIR}/examples/train/run_experiment.cpp
            ${PROJECT_SOURCE_DIR}/examples/train/push_sum_run.cpp)
target_link_libraries(decopt_train_runs PUBLIC decopt::decopt ZLIB::ZLIB Threads::Threads PRIVATE decopt_project_options)
target_include_directories(decopt_train_runs PUBLIC ${PROJECT_SOURCE_DIR}/examples)
if(DECOPT_HAVE_MPI AND NOT DECOPT_SANITIZE)
  target_link_libraries(decopt_train_runs PRIVATE decopt::mpi)
  target_compile_definitions(decopt_train_runs PRIVATE DECOPT_TRAIN_WITH_MPI)
endif()
