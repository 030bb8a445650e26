/*  soffa_cli_ini: INI files written from tables (see soffa_cli_ini.h).
 */
#include "soffa_cli_ini.h"

#include <stdbool.h>
#include <string.h>

#define S_LINE_MAX 4096

/* The value of variable name[0..len), or NULL when it is unset or unknown. */
static const char *
s_var(const soffa_cli_ini_var_t *vars, size_t n_vars, const char *name, size_t len)
{
    for (size_t i = 0; i < n_vars; i++)
        if (strlen(vars[i].name) == len && !strncmp(vars[i].name, name, len))
            return vars[i].value;
    return NULL;
}

/* Appends tmpl to out[*o..len) with its {variables} filled in. */
static bool
s_expand(const char *tmpl, const soffa_cli_ini_var_t *vars, size_t n_vars, char *out, size_t *o, size_t len)
{
    for (const char *p = tmpl; *p;) {
        const char *piece = p;
        size_t plen = 1;
        if (*p == '{') {
            const char *end = strchr(p, '}');
            piece = end ? s_var(vars, n_vars, p + 1, (size_t) (end - p - 1)) : NULL;
            if (!piece)
                return false;
            plen = strlen(piece);
            p = end + 1;
        } else {
            p++;
        }
        if (*o + plen >= len)
            return false;
        memcpy(out + *o, piece, plen);
        *o += plen;
    }
    out[*o] = '\0';
    return true;
}

soffa_err_t
soffa_cli_ini_write(FILE *f, const soffa_cli_ini_row_t *rows, size_t n_rows, const soffa_cli_ini_var_t *vars,
                    size_t n_vars, char *why, size_t whylen)
{
    static const char *const lead[] = {"; ", "[", "", ""};
    for (size_t i = 0; i < n_rows; i++) {
        const soffa_cli_ini_row_t *r = &rows[i];
        if (r->when && !s_var(vars, n_vars, r->when, strlen(r->when)))
            continue;
        char line[S_LINE_MAX];
        size_t o = strlen(lead[r->kind]);
        memcpy(line, lead[r->kind], o + 1);
        const size_t cap = sizeof line - 2;   /* room for "]" and the line's end */
        bool ok = r->kind == SOFFA_CLI_INI_BLANK || s_expand(r->text, vars, n_vars, line, &o, cap);
        if (ok && r->kind == SOFFA_CLI_INI_KEY) {
            ok = o + 3 < cap;
            if (ok) {
                memcpy(line + o, " = ", 3);
                o += 3;
                ok = s_expand(r->value, vars, n_vars, line, &o, cap);
            }
        }
        if (!ok) {
            snprintf(why, whylen, "row %zu (%s): a variable is unset, or the line is longer than %d bytes", i,
                     r->text ? r->text : "blank", S_LINE_MAX);
            return SOFFA_ERR_INVALID_ARG;
        }
        for (size_t k = 0; k < o; k++) {
            if ((unsigned char) line[k] < 0x20 || line[k] == 0x7f) {
                snprintf(why, whylen, "%s: a control character (a line break?) in what would be written", r->text);
                return SOFFA_ERR_INVALID_ARG;
            }
        }
        if (r->kind == SOFFA_CLI_INI_SECTION)
            line[o++] = ']';
        line[o++] = '\n';
        if (fwrite(line, 1, o, f) != o) {
            snprintf(why, whylen, "the file will not take more: %s", soffa_strerror(SOFFA_ERR_IO));
            return SOFFA_ERR_IO;
        }
    }
    return SOFFA_OK;
}
