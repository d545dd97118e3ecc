# One doctest binary per area, each registered with ctest. A shared main keeps the per-binary cost
# to the test files themselves.
add_library(sefar_test_main STATIC ${CMAKE_CURRENT_LIST_DIR}/test_main.cpp)
target_link_libraries(sefar_test_main PUBLIC doctest::doctest sefar_core)

# sefar_add_test(name sources... [CASES "label=pattern[|subcase]" ...]): with CASES, one ctest
# entry per doctest filter (name_label runs `name -tc=pattern [-sc=subcase]`), so a long binary stays
# a few short tests.
function(sefar_add_test name)
  cmake_parse_arguments(ARG "" "" "CASES" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE sefar_test_main)
  target_compile_definitions(${name} PRIVATE
    SEFAR_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    SEFAR_BINARY="$<TARGET_FILE:sefar>")
  add_dependencies(${name} sefar)
  if(ARG_CASES)
    foreach(case ${ARG_CASES})
      # label=pattern[|subcase]
      string(FIND "${case}" "=" eq)
      string(SUBSTRING "${case}" 0 ${eq} label)
      math(EXPR from "${eq} + 1")
      string(SUBSTRING "${case}" ${from} -1 filters)
      string(REPLACE "|" ";" filters "${filters}")
      list(GET filters 0 pattern)
      set(extra "")
      list(LENGTH filters count)
      if(count GREATER 1)
        list(GET filters 1 subcase)
        set(extra "-sc=${subcase}")
      endif()
      add_test(NAME ${name}_${label} COMMAND ${name} "-tc=${pattern}" ${extra})
      set_tests_properties(${name}_${label} PROPERTIES TIMEOUT 600)
    endforeach()
  else()
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES TIMEOUT 600)
  endif()
endfunction()

sefar_add_test(test_graph_pipeline ${CMAKE_CURRENT_LIST_DIR}/test_graph_pipeline.cpp)
sefar_add_test(test_graph_runtime ${CMAKE_CURRENT_LIST_DIR}/test_graph_runtime.cpp)
sefar_add_test(test_cli ${CMAKE_CURRENT_LIST_DIR}/test_cli.cpp)
sefar_add_test(test_split_list ${CMAKE_CURRENT_LIST_DIR}/test_split_list.cpp)
sefar_add_test(test_temporal ${CMAKE_CURRENT_LIST_DIR}/test_temporal.cpp)
sefar_add_test(test_video ${CMAKE_CURRENT_LIST_DIR}/test_video.cpp)
sefar_add_test(test_safetensors ${CMAKE_CURRENT_LIST_DIR}/test_safetensors.cpp)
sefar_add_test(test_model ${CMAKE_CURRENT_LIST_DIR}/test_model.cpp)
sefar_add_test(test_sefar_math ${CMAKE_CURRENT_LIST_DIR}/test_sefar_math.cpp)
sefar_add_test(test_video_pipeline ${CMAKE_CURRENT_LIST_DIR}/test_video_pipeline.cpp)
sefar_add_test(test_infer_cli ${CMAKE_CURRENT_LIST_DIR}/test_infer_cli.cpp)
sefar_add_test(test_trainer ${CMAKE_CURRENT_LIST_DIR}/test_trainer.cpp)
sefar_add_test(test_report ${CMAKE_CURRENT_LIST_DIR}/test_report.cpp)
sefar_add_test(test_resume ${CMAKE_CURRENT_LIST_DIR}/test_resume.cpp)
sefar_add_test(test_faults ${CMAKE_CURRENT_LIST_DIR}/test_faults.cpp)
sefar_add_test(test_interrupt ${CMAKE_CURRENT_LIST_DIR}/test_interrupt.cpp)
sefar_add_test(test_pipelines ${CMAKE_CURRENT_LIST_DIR}/test_pipelines.cpp)
sefar_add_test(test_bad_data ${CMAKE_CURRENT_LIST_DIR}/test_bad_data.cpp)
sefar_add_test(test_cli_corpus ${CMAKE_CURRENT_LIST_DIR}/test_cli_corpus.cpp
  CASES "pipelines1=every malformed pipeline*(1/2)" "pipelines2=every malformed pipeline*(2/2)"
        "flags1=malformed command lines*|first half" "flags2=malformed command lines*|second half"
        "misc=an extends chain*,a configuration*")
sefar_add_test(test_learning ${CMAKE_CURRENT_LIST_DIR}/test_learning.cpp
  CASES "accuracy=a short SeFAR run*" "concurrency=decode and view concurrency*")

# Data parallelism: a one-step worker the test starts alone and as a two-process Gloo job.
add_executable(dist_worker ${CMAKE_CURRENT_LIST_DIR}/dist_worker.cpp)
target_link_libraries(dist_worker PRIVATE sefar_core)
sefar_add_test(test_distributed ${CMAKE_CURRENT_LIST_DIR}/test_distributed.cpp)
target_compile_definitions(test_distributed PRIVATE SEFAR_DIST_WORKER="$<TARGET_FILE:dist_worker>")
add_dependencies(test_distributed dist_worker)
sefar_add_test(test_step_nodes ${CMAKE_CURRENT_LIST_DIR}/test_step_nodes.cpp)
# Parity of one semi-supervised step with the official training loop (tests/official_step_ref.py;
# skips without .venv's torch or SEFAR_OFFICIAL_SRC).
sefar_add_test(test_step_parity ${CMAKE_CURRENT_LIST_DIR}/test_step_parity.cpp)
set_tests_properties(test_step_parity PROPERTIES TIMEOUT 900)
sefar_add_test(test_run_safety ${CMAKE_CURRENT_LIST_DIR}/test_run_safety.cpp
  CASES "fresh=1. *" "validate=2. *" "labels=3. *" "lock=4. *" "checkpoints=5. *" "lists=6. *" "signal=7. *" "small=8. *")
sefar_add_test(test_run_record ${CMAKE_CURRENT_LIST_DIR}/test_run_record.cpp)

# The CUDA paths: `fallback` runs on machines without a GPU; `gpu` needs one and is reported as
# skipped without (docs/GPU.md runs it on a GPU machine).
sefar_add_test(test_cuda ${CMAKE_CURRENT_LIST_DIR}/test_cuda.cpp
  CASES "fallback=cuda: without a GPU*"
        "gpu=cuda: upload*,cuda: batches*,cuda: CUDA-event*,cuda: a training step*,cuda: bf16*,cuda: the NCCL*")
set_tests_properties(test_cuda_gpu PROPERTIES SKIP_REGULAR_EXPRESSION "skipped: no CUDA device")
sefar_add_test(test_atomic_file ${CMAKE_CURRENT_LIST_DIR}/test_atomic_file.cpp)
sefar_add_test(test_enum_table ${CMAKE_CURRENT_LIST_DIR}/test_enum_table.cpp)
