/*  Fuzz target: `soffa import FILE.csv`: the whole spreadsheet path, from
 *  bytes (encoding, byte-order mark, separator, RFC 4180 quoting through
 *  libcsv) to the header's columns, each row's cells, identity numbers,
 *  dates and codes, and for signal lists the message built and validated. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "soffa_sheet.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[600];
    soffa_date_t today = {2026, 11, 27};
    json_t *r = soffa_sheet_read((const char *) data, size, "fuzz.csv", &today, why, sizeof why);
    json_decref(r);
    return 0;
}
