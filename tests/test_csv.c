/*  Tests for soffa_csv (spreadsheets through libcsv) and soffa_sheet (their
 *  columns and rows). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_csv.h"
#include "soffa_sheet.h"

typedef struct {
    long lines[16];
    char cells[16][8][64];
    size_t n[16];
    size_t rows;
} rows_t;

static int
collect(void *ctx, long line, char **f, size_t n)
{
    rows_t *r = ctx;
    if (r->rows < 16) {
        r->lines[r->rows] = line;
        r->n[r->rows] = n;
        for (size_t i = 0; i < n && i < 8; i++)
            snprintf(r->cells[r->rows][i], 64, "%s", f[i]);
        r->rows++;
    }
    return 0;
}

static soffa_err_t
read_text(const char *text, size_t len, rows_t *r, char *sep, char *why)
{
    memset(r, 0, sizeof *r);
    return soffa_csv_read(text, len, collect, r, sep, why, 600);
}

Test(csv, excel_swedish_semicolons_bom_crlf_and_quoted_line_breaks)
{
    const char t[] = "\xef\xbb\xbfPersonnummer;Kommentar;Hemkommun\r\n"
                     "080314-2710;\"a; b \"\"c\"\"\r\nd\";1419\r\n"
                     ";;\r\n"
                     "# comment\r\n"
                     "  090123-4138 ;e;1482\r\n";
    rows_t r;
    char sep, why[600];
    cr_assert_eq(read_text(t, sizeof t - 1, &r, &sep, why), SOFFA_OK, "%s", why);
    cr_assert_eq(sep, ';');
    cr_assert_eq(r.rows, 3, "empty and comment rows are skipped");
    cr_assert_str_eq(r.cells[0][0], "Personnummer", "the byte-order mark is not part of the first heading");
    cr_assert_str_eq(r.cells[1][1], "a; b \"c\"\r\nd");
    cr_assert_eq(r.lines[1], 2);
    cr_assert_eq(r.lines[2], 6, "lines are counted as an editor counts them");
    cr_assert_str_eq(r.cells[2][0], "090123-4138", "blanks around unquoted fields are dropped");
}

Test(csv, commas_and_tabs_are_detected)
{
    rows_t r;
    char sep, why[600];
    cr_assert_eq(read_text("a,b;c,d\n1,2;3,4\n", 16, &r, &sep, why), SOFFA_OK);
    cr_assert_eq(sep, ',');
    cr_assert_eq(r.n[0], 3);
    cr_assert_eq(read_text("a\tb\tc\n1\t2\t3\n", 12, &r, &sep, why), SOFFA_OK);
    cr_assert_eq(sep, '\t');
    cr_assert_eq(r.n[1], 3);
}

/* Issue 15: the old reader split lines longer than 4,095 bytes into rows. */
Test(csv, test_issue_15_lines_of_any_length)
{
    size_t len = 20000;
    char *t = malloc(len + 64);
    int o = sprintf(t, "a;b;c\n1;\"");
    memset(t + o, 'x', 12000);
    o += 12000;
    o += sprintf(t + o, "\";%*s3\n", 5000, "");
    rows_t r;
    char why[600];
    cr_assert_eq(read_text(t, (size_t) o, &r, NULL, why), SOFFA_OK, "%s", why);
    cr_assert_eq(r.rows, 2);
    cr_assert_eq(r.n[1], 3);
    cr_assert_str_eq(r.cells[1][2], "3");
    free(t);
}

Test(csv, other_encodings_are_named_with_a_remedy)
{
    rows_t r;
    char why[600];
    const char cp1252[] = "Typ;Hemkommun\nFr\xe5nvaro;1419\n";
    cr_assert_eq(read_text(cp1252, sizeof cp1252 - 1, &r, NULL, why), SOFFA_ERR_MALFORMED);
    cr_assert(strstr(why, "rad 2") && strstr(why, "0xE5") && strstr(why, "Windows-1252") && strstr(why, "\"å\"")
                  && strstr(why, "iconv"),
              "%s", why);
    const char utf16[] = "\xff\xfeT\0y\0p\0";
    cr_assert_eq(read_text(utf16, sizeof utf16 - 1, &r, NULL, why), SOFFA_ERR_MALFORMED);
    cr_assert(strstr(why, "UTF-16"), "%s", why);
    const char overlong[] = "a\n\xc0\xaf\n";   /* an overlong '/' is not UTF-8 */
    cr_assert_eq(read_text(overlong, sizeof overlong - 1, &r, NULL, why), SOFFA_ERR_MALFORMED);
    cr_assert(strstr(why, "rad 2"), "%s", why);
    const char cut[] = "a\n\xc3";   /* cut in the middle of a character */
    cr_assert_eq(read_text(cut, sizeof cut - 1, &r, NULL, why), SOFFA_ERR_MALFORMED);
}

Test(csv, bad_quoting_names_its_line)
{
    rows_t r;
    char why[600];
    cr_assert_eq(read_text("a;b\n1;x\"y\n", 10, &r, NULL, why), SOFFA_ERR_MALFORMED);
    cr_assert(strstr(why, "rad 2: felaktigt citattecken"), "%s", why);
    cr_assert_eq(read_text("a;b\n1;\"x\n2;3\n", 12, &r, NULL, why), SOFFA_ERR_MALFORMED);
    cr_assert(strstr(why, "rad 2: ett citattecken"), "%s", why);
}

/* The writer (the key-figure export, issue 19): every field quoted, quotes
 * doubled, separators and line breaks kept inside, UTF-8 as it is, and a
 * cell a spreadsheet would run as a formula made text; read back by the
 * reader, the fields come back as written (the neutralised ones with their
 * apostrophe). */
Test(csv, the_writer_quotes_and_neutralises_formulas)
{
    const char *row[] = {"=HYPERLINK(\"http://x\")", "+46", "-1", "@SUM(A1)", "\tx", "a \"b\", c\nd", "kön åäö", "", NULL};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(soffa_csv_write_row(f, row, sizeof row / sizeof *row), SOFFA_OK);
    cr_assert_eq(fclose(f), 0);
    cr_assert_str_eq(buf, "\"'=HYPERLINK(\"\"http://x\"\")\",\"'+46\",\"'-1\",\"'@SUM(A1)\",\"'\tx\","
                          "\"a \"\"b\"\", c\nd\",\"kön åäö\",\"\",\"\"\r\n");
    rows_t r;
    char sep, why[600];
    cr_assert_eq(read_text(buf, len, &r, &sep, why), SOFFA_OK, "%s", why);
    cr_assert_eq(r.rows, 1);
    cr_assert_eq(r.n[0], 9);
    cr_assert_str_eq(r.cells[0][0], "'=HYPERLINK(\"http://x\")");
    cr_assert_str_eq(r.cells[0][5], "a \"b\", c\nd");
    cr_assert_str_eq(r.cells[0][6], "kön åäö");
    free(buf);
}

Test(sheet, swedish_headings_and_words)
{
    const char t[] = "Typ;Personnummer;Hemkommun;Händelse;Datum;Skolenhetskod;Skolform;Avgångsorsak;Förnamn\n"
                     "Inskrivning;080314-2710;1419;Slutade;2026-10-01 00:00;14150001;Gymnasieskola;Flytt;Alva\n"
                     "Frånvaro;080314-2710;1419;;;14150001;;;Alva\n";
    char why[600];
    soffa_date_t today = {2026, 11, 27};
    json_t *s = soffa_sheet_read(t, sizeof t - 1, "f.csv", &today, why, sizeof why);
    cr_assert_not_null(s, "%s", why);
    cr_assert_str_eq(json_string_value(json_object_get(s, "kind")), "signals");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(s, "ignored_columns"), 0)), "Förnamn");
    json_t *m = json_object_get(json_array_get(json_object_get(s, "messages"), 0), "message");
    json_t *e = json_object_get(m, "enrolment_changed");
    cr_assert_str_eq(json_string_value(json_object_get(e, "event")), "LEFT");
    cr_assert_str_eq(json_string_value(json_object_get(e, "leave_reason")), "MOVED");
    cr_assert_str_eq(json_string_value(json_object_get(e, "effective_date")), "2026-10-01");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "subject"), "id")), "200803142710");
    json_t *err = json_array_get(json_object_get(s, "errors"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(err, "where")), "f.csv:3", "the absence row lacks its period");
    json_decref(s);
}

Test(sheet, a_kommentar_column_is_never_a_note)
{
    const char t[] = "Typ,Personnummer,Hemkommun,Riskkod,Kommentar,Samtycke\n"
                     "Risk,080314-2710,1419,EXAMEN_AT_RISK,mår dåligt,0190f5a2-7b1c-7d3e-8f4a-5b6c7d8e9f01\n";
    char why[600];
    json_t *s = soffa_sheet_read(t, sizeof t - 1, "f.csv", NULL, why, sizeof why);
    cr_assert_not_null(s, "%s", why);
    char *dump = json_dumps(s, 0);
    cr_assert(strstr(dump, "mår dåligt") == NULL, "free text of an export never travels: %s", dump);
    free(dump);
    json_decref(s);
}

Test(sheet, pupil_lists_merge_rows_and_check_them)
{
    const char t[] = "Personnummer;Hemkommun;Startdatum;Slutdatum;Makulerad;Frånvaro från;Frånvaro till;"
                     "Schemalagd tid (min);Ogiltig frånvaro (min)\n"
                     "080314-2710;1419;2026-08-17;2029-06-10;nej;2026-09-01;2026-09-30;1200;300\n"
                     "080314-2710;1419;2025-08-18;2026-06-10;ja;;;;\n"
                     "080314-2710;1421;2026-08-17;;nej;;;;\n"
                     "080314-2711;1419;2026-08-17;;;;;;\n"
                     "090123-4138;1419;2026-08-17;2026-08-01;;;;;\n"
                     "090123-4138;1482;2026-08-17;;;2026-09-01;2026-09-30;100;200\n";
    char why[600];
    json_t *s = soffa_sheet_read(t, sizeof t - 1, "elever.csv", NULL, why, sizeof why);
    cr_assert_not_null(s, "%s", why);
    cr_assert_str_eq(json_string_value(json_object_get(s, "kind")), "pupils");
    json_t *p = json_array_get(json_object_get(s, "pupils"), 0);
    cr_assert_eq(json_array_size(json_object_get(s, "pupils")), 1);
    cr_assert_eq(json_array_size(json_object_get(p, "enrolments")), 2, "one pupil, two enrolments");
    cr_assert(json_is_true(json_object_get(json_array_get(json_object_get(p, "enrolments"), 1), "cancelled")));
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(json_object_get(p, "absence"), 0), "invalid")), 300);
    cr_assert_eq(json_array_size(json_object_get(s, "errors")), 4, "another hemkommun, a check digit, an end before "
                                                                    "the start, more invalid than scheduled");
    json_decref(s);
}
