/*  soffa_cli_ini: INI files written from tables, for the configurations
 *  `soffa up` makes (broker.ini, each agent.ini and its [web] section).
 *
 *  A file is an array of rows, one line each: a comment, a [section], a
 *  key = value, or a blank line. Text in a row may name variables as
 *  {name}; their values come with the call, so the table holds every key
 *  and value of the file and the code only says who the file is for. A row
 *  whose `when` variable is unset is left out (an optional key, or a
 *  section only some files have). What is written is checked first: no
 *  control character (a line break, say) reaches the file, so a value can
 *  never start a line, a section or a key of its own.
 */
#ifndef SOFFA_CLI_INI_H
#define SOFFA_CLI_INI_H

#include <stddef.h>
#include <stdio.h>

#include "soffa_err.h"

typedef enum {
    SOFFA_CLI_INI_COMMENT,   /* "; text" */
    SOFFA_CLI_INI_SECTION,   /* "[text]" */
    SOFFA_CLI_INI_KEY,       /* "text = value" */
    SOFFA_CLI_INI_BLANK      /* "" */
} soffa_cli_ini_kind_t;

typedef struct {
    soffa_cli_ini_kind_t kind;
    const char *text;        /* the comment, section name or key; may name {variables} */
    const char *value;       /* KEY: the value; may name {variables} */
    const char *when;        /* the row is written only when this variable is set; NULL: always */
} soffa_cli_ini_row_t;

typedef struct {
    const char *name;        /* as written between the braces */
    const char *value;       /* NULL: unset */
} soffa_cli_ini_var_t;

/*  Appends the rows to f, their {variables} filled from vars. Returns
 *  SOFFA_OK; SOFFA_ERR_INVALID_ARG, with why, when a row names a variable
 *  that is unset or a line would hold a control character or exceed 4 KiB
 *  (nothing of that row is written); SOFFA_ERR_IO when f will not take the
 *  text. */
soffa_err_t soffa_cli_ini_write(FILE *f, const soffa_cli_ini_row_t *rows, size_t n_rows, const soffa_cli_ini_var_t *vars,
                                size_t n_vars, char *why, size_t whylen);

#endif
