# ctest driver: install the built Keel into a fresh prefix, then configure,
# build and run tests/consumer against it.
# Inputs: -DKEEL_BINARY_DIR -DKEEL_CONSUMER_SOURCE -DWORK_DIR, and the parent build's
# compiler and flags (a sanitizer build's library needs a sanitizer consumer).
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
function(run_step)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: step failed (${rc}): ${ARGV}")
  endif()
endfunction()
run_step(${CMAKE_COMMAND} --install "${KEEL_BINARY_DIR}" --prefix "${prefix}")
run_step(${CMAKE_COMMAND} -S "${KEEL_CONSUMER_SOURCE}" -B "${WORK_DIR}/build" -G Ninja
         -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
         -DCMAKE_CXX_COMPILER=${CONSUMER_CXX} "-DCMAKE_CXX_FLAGS=${CONSUMER_CXX_FLAGS}"
         "-DCMAKE_EXE_LINKER_FLAGS=${CONSUMER_LINKER_FLAGS}")
run_step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run_step("${WORK_DIR}/build/consumer")
