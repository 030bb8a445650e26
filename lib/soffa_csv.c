/*  soffa_csv: RFC 4180 rows through libcsv, with the checks Excel's
 *  Swedish defaults call for (encoding, byte-order mark, separator). */
#include "soffa_csv.h"

#include <csv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    soffa_csv_row_fn fn;
    void *ctx;
    char **fields;          /* the row being read */
    size_t n;
    long line;              /* physical line of the chunk being parsed */
    long row_line;          /* line the current row started on */
    long last_end;          /* line the last row ended on */
    bool stop;              /* fn asked to stop */
    soffa_err_t rc;         /* sticky: the first problem */
    char *why;
    size_t whylen;
} s_reader_t;

static void
s_fail(s_reader_t *r, soffa_err_t rc, const char *fmt, long line, long arg)
{
    if (r->rc != SOFFA_OK)
        return;
    r->rc = rc;
    if (r->why)
        snprintf(r->why, r->whylen, fmt, line, arg);
}

static void
s_clear_row(s_reader_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->fields[i]);
    r->n = 0;
}

static void
s_on_field(void *data, size_t len, void *ctx)
{
    s_reader_t *r = ctx;
    if (r->rc != SOFFA_OK || r->stop)
        return;
    if (r->n == 0) {
        /* A first field with line breaks inside began on an earlier line. */
        long breaks = 0;
        for (size_t i = 0; data && i < len; i++)
            breaks += ((const char *) data)[i] == '\n';
        r->row_line = r->line - breaks;
    }
    if (len > SOFFA_CSV_MAX_FIELD) {
        s_fail(r, SOFFA_ERR_MALFORMED, "rad %ld: ett fält är längre än %ld byte", r->row_line, SOFFA_CSV_MAX_FIELD);
        return;
    }
    if (r->n >= SOFFA_CSV_MAX_FIELDS) {
        s_fail(r, SOFFA_ERR_MALFORMED, "rad %ld: raden har fler än %ld kolumner", r->row_line, SOFFA_CSV_MAX_FIELDS);
        return;
    }
    char *f = malloc(len + 1);
    if (!f) {
        r->rc = SOFFA_ERR_NOMEM;
        return;
    }
    if (len)
        memcpy(f, data, len);
    f[len] = '\0';
    r->fields[r->n++] = f;
}

static void
s_on_row(int term, void *ctx)
{
    (void) term;
    s_reader_t *r = ctx;
    r->last_end = r->line;
    if (r->rc == SOFFA_OK && !r->stop && r->n > 0) {
        bool empty = true;   /* Excel writes empty rows as ";;;;" */
        for (size_t i = 0; i < r->n && empty; i++)
            empty = r->fields[i][0] == '\0';
        if (!empty && r->fields[0][0] != '#' && r->fn(r->ctx, r->row_line, r->fields, r->n))
            r->stop = true;
    }
    s_clear_row(r);
}

/* Byte offset of the first byte that is not well-formed UTF-8, or len. */
static size_t
s_utf8_bad(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000;
        } else {
            return i;
        }
        if (i + n >= len)
            return i;   /* cut short by the end of the file */
        uint32_t cp = c & (0x3f >> n);
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n + 1;
    }
    return len;
}

/* What a Windows-1252 byte would have been, for the error text. */
static const char *
s_cp1252(unsigned char c)
{
    switch (c) {
    case 0xc5: return "Å";
    case 0xc4: return "Ä";
    case 0xd6: return "Ö";
    case 0xe5: return "å";
    case 0xe4: return "ä";
    case 0xf6: return "ö";
    case 0xe9: return "é";
    case 0xc9: return "É";
    case 0xfc: return "ü";
    default: return NULL;
    }
}

static long
s_line_at(const char *text, size_t off)
{
    long line = 1;
    for (size_t i = 0; i < off; i++)
        line += text[i] == '\n';
    return line;
}

/* The separator of the first row: the most frequent of ';' ',' and tab
 * outside quotes (',' when there is none, a one-column file). */
static char
s_detect(const char *text, size_t len)
{
    size_t semi = 0, comma = 0, tab = 0;
    bool quoted = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && (c == '\n' || c == '\r') && (semi || comma || tab))
            break;
        else if (!quoted && c == ';')
            semi++;
        else if (!quoted && c == ',')
            comma++;
        else if (!quoted && c == '\t')
            tab++;
    }
    if (semi > comma && semi >= tab)
        return ';';
    if (tab > comma && tab > semi)
        return '\t';
    return ',';
}

static int
s_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' ? CSV_SPACE : 0;
}

static int
s_is_space_only(unsigned char c)
{
    return c == ' ' ? CSV_SPACE : 0;   /* tab-separated: a tab is not a blank */
}

soffa_err_t
soffa_csv_read(const char *text, size_t len, soffa_csv_row_fn fn, void *ctx, char *sep, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    const unsigned char *u = (const unsigned char *) text;
    if (len >= 2 && ((u[0] == 0xff && u[1] == 0xfe) || (u[0] == 0xfe && u[1] == 0xff))) {
        if (why)
            snprintf(why, whylen, "filen är UTF-16 (Excels \"Unicode-text\"); spara den som \"CSV UTF-8 "
                                  "(kommaavgränsad)\" eller konvertera den: iconv -f UTF-16 -t UTF-8");
        return SOFFA_ERR_MALFORMED;
    }
    if (len >= 3 && u[0] == 0xef && u[1] == 0xbb && u[2] == 0xbf) {
        text += 3;   /* Excel's "CSV UTF-8" begins with a byte-order mark */
        len -= 3;
        u += 3;
    }
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        if (why)
            snprintf(why, whylen, "rad %ld: filen innehåller NUL-tecken; den är inte en textfil (UTF-16? en "
                                  "Excel-arbetsbok?); spara den som \"CSV UTF-8 (kommaavgränsad)\"",
                     s_line_at(text, (size_t) (nul - text)));
        return SOFFA_ERR_MALFORMED;
    }
    size_t bad = s_utf8_bad(u, len);
    if (bad < len) {
        const char *as = s_cp1252(u[bad]);
        if (why && as)
            snprintf(why, whylen,
                     "rad %ld: byten 0x%02X är inte UTF-8; filen ser ut att vara sparad som Windows-1252 (där den "
                     "är \"%s\"), som äldre Excel gör; spara den som \"CSV UTF-8 (kommaavgränsad)\" eller konvertera "
                     "den: iconv -f WINDOWS-1252 -t UTF-8",
                     s_line_at(text, bad), u[bad], as);
        else if (why)
            snprintf(why, whylen, "rad %ld: byten 0x%02X är inte UTF-8; spara filen som \"CSV UTF-8 "
                                  "(kommaavgränsad)\" eller konvertera den till UTF-8",
                     s_line_at(text, bad), u[bad]);
        return SOFFA_ERR_MALFORMED;
    }
    char delim = s_detect(text, len);
    if (sep)
        *sep = delim;

    s_reader_t r = {.fn = fn, .ctx = ctx, .line = 1, .row_line = 1, .why = why, .whylen = whylen};
    r.fields = calloc(SOFFA_CSV_MAX_FIELDS, sizeof *r.fields);
    struct csv_parser p;
    if (!r.fields || csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        free(r.fields);
        return SOFFA_ERR_NOMEM;
    }
    csv_set_delim(&p, (unsigned char) delim);
    csv_set_space_func(&p, delim == '\t' ? s_is_space_only : s_is_space);
    /* One physical line at a time, so every row knows its line number;
     * libcsv carries a quoted field over from one call to the next. */
    size_t off = 0;
    while (off < len && r.rc == SOFFA_OK && !r.stop) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t) (nl - (text + off)) + 1 : len - off;
        if (csv_parse(&p, text + off, n, s_on_field, s_on_row, &r) != n && r.rc == SOFFA_OK) {
            if (csv_error(&p) == CSV_EPARSE)
                s_fail(&r, SOFFA_ERR_MALFORMED,
                       "rad %ld: felaktigt citattecken: ett citattecken mitt i ett fält utan citattecken, eller "
                       "text efter ett avslutande citattecken (skriv \"\" för ett citattecken inuti ett citerat "
                       "fält)",
                       r.line, 0);
            else
                r.rc = SOFFA_ERR_NOMEM;
        }
        off += n;
        if (nl)
            r.line++;
    }
    if (r.rc == SOFFA_OK && !r.stop && csv_fini(&p, s_on_field, s_on_row, &r) != 0 && r.rc == SOFFA_OK) {
        if (csv_error(&p) == CSV_EPARSE)
            s_fail(&r, SOFFA_ERR_MALFORMED,
                   "rad %ld: ett citattecken i raden som börjar här avslutas aldrig (filen tar slut inuti ett "
                   "citerat fält)%.0ld",
                   r.last_end + 1, 0L);
        else
            r.rc = SOFFA_ERR_NOMEM;
    }
    s_clear_row(&r);
    csv_free(&p);
    free(r.fields);
    return r.rc;
}

soffa_err_t
soffa_csv_write_row(FILE *out, const char *const *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *f = fields[i] ? fields[i] : "";
        if (i > 0 && fputc(',', out) == EOF)
            return SOFFA_ERR_IO;
        if (f[0] && strchr("=+-@\t\r", f[0])) {
            /* A formula to a spreadsheet: the apostrophe makes it text. */
            size_t len = strlen(f);
            char *safe = malloc(len + 2);
            if (!safe)
                return SOFFA_ERR_NOMEM;
            safe[0] = '\'';
            memcpy(safe + 1, f, len + 1);
            int rc = csv_fwrite(out, safe, len + 1);
            free(safe);
            if (rc != 0)
                return SOFFA_ERR_IO;
        } else if (csv_fwrite(out, f, strlen(f)) != 0) {
            return SOFFA_ERR_IO;
        }
    }
    return fputs("\r\n", out) == EOF ? SOFFA_ERR_IO : SOFFA_OK;
}
