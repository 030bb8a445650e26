# Turns config/kommuner.csv (code,name,county_code,county_name) into a C table
# sorted by code. Run as: cmake -DIN=csv -DOUT=c -P kommuner.cmake
file(STRINGS "${IN}" lines ENCODING UTF-8)
list(POP_FRONT lines header)
if(NOT header MATCHES "^code,name,")
  message(FATAL_ERROR "${IN}: unexpected header '${header}'")
endif()
list(SORT lines)
set(body "")
set(count 0)
foreach(line IN LISTS lines)
  if(line STREQUAL "")
    continue()
  endif()
  string(REPLACE "," ";" cols "${line}")
  list(GET cols 0 code)
  list(GET cols 1 name)
  if(NOT code MATCHES "^[0-9][0-9][0-9][0-9]$")
    message(FATAL_ERROR "${IN}: bad municipality code '${code}'")
  endif()
  string(APPEND body "    {\"${code}\", \"${name}\"},\n")
  math(EXPR count "${count} + 1")
endforeach()
file(WRITE "${OUT}.tmp"
"/* Generated from config/kommuner.csv by cmake/kommuner.cmake; do not edit. */
#include <stddef.h>
typedef struct { const char *code; const char *name; } soffa_kommun_row_t;
extern const soffa_kommun_row_t soffa_kommun_rows[];
extern const size_t soffa_kommun_rows_count;
const soffa_kommun_row_t soffa_kommun_rows[] = {
${body}};
const size_t soffa_kommun_rows_count = ${count};
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
