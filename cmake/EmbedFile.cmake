# Compiles a file into the binary as a C array.
#
#   include(${CMAKE_SOURCE_DIR}/cmake/EmbedFile.cmake)
#   tf_embed_file(<target> <input file> <symbol>)
#
# generates ${CMAKE_BINARY_DIR}/generated/<symbol>.c holding
#
#   const char <symbol>[];      /* the file's bytes, then a terminating NUL */
#   const size_t <symbol>_len;  /* the file's length, without that NUL */
#
# and adds it to <target>'s sources; the file is regenerated whenever the
# input changes.  Declare the two symbols in the header of the module that
# uses them.  Call it from the CMakeLists.txt that creates <target>.
#
# Every byte is written as a hex-escaped character constant ('\x7b'), like
# cmake/embed_migrations.cmake escapes SQL, but in a braced initializer
# rather than one string literal: a literal longer than 4095 bytes trips
# -Wpedantic's -Woverlength-strings (an error with -Werror), an initializer
# has no such limit, and '\xNN' constants (unlike plain 0xNN integers) do
# not overflow a signed char.
#
# This file is also its own generator: run as a script (cmake -P) with
# -DIN=<input> -DOUT=<output .c> -DSYMBOL=<symbol> it writes OUT.

if(CMAKE_SCRIPT_MODE_FILE)
  if(NOT DEFINED IN OR NOT DEFINED OUT OR NOT DEFINED SYMBOL)
    message(FATAL_ERROR "EmbedFile.cmake: pass -DIN=, -DOUT= and -DSYMBOL=")
  endif()
  if(NOT SYMBOL MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "EmbedFile.cmake: '${SYMBOL}' is not a C identifier")
  endif()
  file(READ "${IN}" hex HEX)
  string(LENGTH "${hex}" hex_len)
  math(EXPR size "${hex_len} / 2")
  # 16 bytes per line: "'\xNN'," per byte, then a newline and an indent.
  # (CMake regular expressions have no {n} repetition, hence string(REPEAT).)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
  string(REPEAT "'\\\\x[0-9a-f][0-9a-f]'," 16 line_re)
  string(REGEX REPLACE "(${line_re})" "\\1\n    " bytes "${bytes}")
  get_filename_component(in_name "${IN}" NAME)
  set(body "/* Generated from ${in_name} by cmake/EmbedFile.cmake; do not edit. */\n")
  string(APPEND body "#include <stddef.h>\n\n")
  string(APPEND body "/* ${size} bytes and a terminating NUL. */\n")
  string(APPEND body "const char ${SYMBOL}[] = {\n    ${bytes}'\\0'};\n\n")
  string(APPEND body "const size_t ${SYMBOL}_len = ${size};\n")
  file(WRITE "${OUT}" "${body}")
  return()
endif()

# The path of this file, kept for the generator command: CMAKE_CURRENT_LIST_FILE
# names the caller's file by the time the function runs.
set(TF_EMBED_FILE_SCRIPT ${CMAKE_CURRENT_LIST_FILE})

function(tf_embed_file target input symbol)
  get_filename_component(input "${input}" ABSOLUTE)
  set(out ${CMAKE_BINARY_DIR}/generated/${symbol}.c)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DIN=${input} -DOUT=${out} -DSYMBOL=${symbol}
            -P ${TF_EMBED_FILE_SCRIPT}
    DEPENDS ${input} ${TF_EMBED_FILE_SCRIPT}
    COMMENT "Embedding ${input} as ${symbol}"
    VERBATIM)
  target_sources(${target} PRIVATE ${out})
endfunction()
