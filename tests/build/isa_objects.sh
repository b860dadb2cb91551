#!/bin/bash
# The per-ISA kernel objects (*_avx2.cpp, *_avx512.cpp, compiled with AVX
# flags) must define no weak symbol: a weak (inline, template) function
# emitted there may be the copy the linker keeps for portable callers too,
# which would fault on a CPU without the ISA. See src/model/trees/tree_ensemble_impl.hpp.
# Usage: isa_objects.sh <nm> <object>...
set -u
nm_tool=$1
shift
status=0
checked=0
for obj in "$@"; do
  case "$obj" in *_avx2.cpp.o | *_avx512.cpp.o) ;; *) continue ;; esac
  checked=$((checked + 1))
  # W/V: weak definitions; u: unique global (GNU). DW.ref.__gxx_personality_v0
  # is the exception-personality pointer GCC emits in every C++ object.
  bad=$("$nm_tool" -C --defined-only "$obj" | awk '$2 ~ /^[WVu]$/' | grep -v 'DW.ref.__gxx_personality_v0')
  if [ -n "$bad" ]; then
    echo "FAIL: $obj defines weak symbols shared with portable code:"
    echo "$bad"
    status=1
  fi
done
if [ "$checked" -eq 0 ]; then
  echo "FAIL: no ISA objects among the arguments"
  exit 1
fi
[ "$status" -eq 0 ] && echo "ok: $checked ISA objects define no weak symbols"
exit $status
