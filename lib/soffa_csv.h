/*  soffa_csv: the small CSV dialect of `soffa import`.
 *
 *  Commas separate columns; a column may be quoted with "..." (no quotes
 *  inside); blanks around a value are dropped. Lines are at most 4 KiB.
 */
#ifndef SOFFA_CSV_H
#define SOFFA_CSV_H

#include <stddef.h>

/*  Splits `line` in place into at most max columns; returns how many. The
 *  pointers in cols point into line. */
size_t soffa_csv_split(char *line, char **cols, size_t max);

#endif
