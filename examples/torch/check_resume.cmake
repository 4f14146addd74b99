# ctest helper (PROGRAM = decopt-torch-train, TRAIN_DIR = examples/train, WORK_DIR = a scratch
# folder): for decopt's Adam (--local adam) and for torch::optim's (--local torch-adam, whose
# moments and step are in the checkpoint), a run of 16 rounds and a run stopped at 8 and resumed
# from its checkpoint end with the same model_checksum (the torch-adam one resumed on threads from
# a sim checkpoint, and written every 4 rounds); a checkpoint resumed with another --local, or cut
# in half, is refused with one line on stderr.
set(common --nodes 4 --train-samples 1000 --eval-every 4 --eval-samples 500 --quiet --json)
include(${TRAIN_DIR}/checksum_of.cmake)
include(${TRAIN_DIR}/../common/resume_checks.cmake)
foreach(local adam torch-adam)
  set(ck ${WORK_DIR}/torch_resume_${local}.ckpt)
  file(REMOVE ${ck})
  set(run ${PROGRAM} ${common} --local ${local})
  checksum_of(straight ${run} --rounds 16)
  set(transport sim)
  set(every "")
  if(local STREQUAL "torch-adam")
    set(transport threads)
    set(every --checkpoint-every 4)
  endif()
  checksum_of(first_half ${run} --rounds 8 --checkpoint ${ck} ${every})
  checksum_of(resumed ${run} --rounds 16 --resume ${ck} --transport ${transport})
  if(NOT straight STREQUAL resumed)
    message(FATAL_ERROR "--local ${local}: 16 rounds gave ${straight}; 8 + resume on ${transport} gave ${resumed}")
  endif()
  if(straight STREQUAL first_half)
    message(FATAL_ERROR "--local ${local}: the 8-round model equals the 16-round one: the test would not see a broken resume")
  endif()
  message(STATUS "--local ${local}: 16 rounds = 8 + resume on ${transport} (${straight})")
endforeach()

# Another --local: refused, naming both.
execute_process(COMMAND ${PROGRAM} ${common} --local torch-adam --rounds 16 --resume ${WORK_DIR}/torch_resume_adam.ckpt
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "^decopt-torch-train: .*another run \\(saved: local=adam .*this run: local=torch-adam ")
  message(FATAL_ERROR "a checkpoint of --local adam resumed with --local torch-adam was not refused clearly (rc ${rc}): ${err}")
endif()
# A damaged file (cut in half) is refused with one line.
set(ck ${WORK_DIR}/torch_resume_torch-adam.ckpt)
refused_when_cut(${ck} decopt-torch-train ${PROGRAM} ${common} --local torch-adam --rounds 16)
message(STATUS "another --local and a damaged checkpoint are refused")
