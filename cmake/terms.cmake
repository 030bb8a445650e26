# Turns config/sensitive-terms.txt into a C array: the built-in copy of the
# sensitive-term list (lib/soffa_terms.c parses it like a file, so the two
# cannot differ). Run as: cmake -DIN=txt -DOUT=c -P terms.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
if(n EQUAL 0)
  message(FATAL_ERROR "${IN}: empty")
endif()
math(EXPR bytes "${n} / 2")
# 0x.., sixteen to a line.
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n    " body "${body}")
file(WRITE "${OUT}.tmp"
"/* Generated from config/sensitive-terms.txt by cmake/terms.cmake; do not edit. */
#include <stddef.h>
extern const unsigned char soffa_terms_builtin[];
extern const size_t soffa_terms_builtin_len;
const unsigned char soffa_terms_builtin[] = {
    ${body}
};
const size_t soffa_terms_builtin_len = ${bytes};
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
