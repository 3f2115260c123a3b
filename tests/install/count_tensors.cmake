# CTest install_count_tensors_example (cmake -P): installs the build into a
# temporary prefix, builds examples/count_tensors against the installed
# package and checks the count it prints for the shipped example checkpoint.
set(work ${CKPT_BINARY_DIR}/install_test)
file(REMOVE_RECURSE ${work})
file(MAKE_DIRECTORY ${work})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# cmake --install rewrites the build folder's install_manifest.txt, which
# uninstalling a real install reads: keep the one there was.
set(manifest ${CKPT_BINARY_DIR}/install_manifest.txt)
if(EXISTS ${manifest})
  file(COPY_FILE ${manifest} ${work}/install_manifest.txt)
endif()
run(${CMAKE_COMMAND} --install ${CKPT_BINARY_DIR} --prefix ${work}/prefix)
if(EXISTS ${work}/install_manifest.txt)
  file(COPY_FILE ${work}/install_manifest.txt ${manifest})
else()
  file(REMOVE ${manifest})
endif()
if(NOT EXISTS ${work}/prefix/include/ckpt/api/checkpoint.h OR NOT EXISTS ${work}/prefix/include/ckpt/torch/checkpoint.h)
  message(FATAL_ERROR "headers not installed under include/ckpt")
endif()
run(${CMAKE_COMMAND} -S ${CKPT_SOURCE_DIR}/examples/count_tensors -B ${work}/build
    -DCMAKE_PREFIX_PATH=${work}/prefix -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${work}/build)
run(${work}/build/count_tensors ${CKPT_SOURCE_DIR}/examples/musicgen_tiny_training.th)
if(NOT run_output STREQUAL "best_state/model: 36 tensors\n")
  message(FATAL_ERROR "unexpected output: '${run_output}'")
endif()
file(REMOVE_RECURSE ${work})
message(STATUS "count_tensors: ${run_output}")
