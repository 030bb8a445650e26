/*  soffa_csv: one line into columns, in place. */
#include "soffa_csv.h"

#include <stdbool.h>

size_t
soffa_csv_split(char *line, char **cols, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *start = p;
        if (*p == '"') {
            start = ++p;
            while (*p && *p != '"')
                p++;
            if (*p == '"')
                *p++ = '\0';
            while (*p && *p != ',')
                p++;
        } else {
            while (*p && *p != ',')
                p++;
        }
        char *end = p;
        bool last = *p == '\0';
        *p = '\0';
        while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
            *--end = '\0';
        cols[n++] = start;
        if (last)
            break;
        p++;
    }
    return n;
}
