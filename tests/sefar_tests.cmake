# One doctest binary per area, each registered with ctest. A shared main keeps the per-binary cost
# to the test files themselves.
add_library(sefar_test_main STATIC ${CMAKE_CURRENT_LIST_DIR}/test_main.cpp)
target_link_libraries(sefar_test_main PUBLIC doctest::doctest sefar_core)

function(sefar_add_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE sefar_test_main)
  target_compile_definitions(${name} PRIVATE
    SEFAR_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    SEFAR_BINARY="$<TARGET_FILE:sefar>")
  add_dependencies(${name} sefar)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 600)
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
