# Compiler warnings: -Wall -Wextra -Wpedantic everywhere; errors when
# KEEL_WARNINGS_AS_ERRORS is on (the dev, asan, tsan and ci presets).
function(keel_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(KEEL_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# SIMD kernels live in their own translation units, named *_avx2.cpp and
# *_avx512.cpp, and only those get ISA flags; the library as a whole stays
# portable and the kernel is chosen at run time (no -march=native).
function(keel_add_simd_kernels target)
  get_target_property(_srcs ${target} SOURCES)
  foreach(_src IN LISTS _srcs)
    if(_src MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${_src} PROPERTIES COMPILE_OPTIONS
        "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx2;-mfma;-mbmi2;-mpopcnt")
    elseif(_src MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${_src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mbmi2;-mpopcnt")
    endif()
  endforeach()
endfunction()
