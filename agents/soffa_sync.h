/*  soffa_sync: a client of a student information system's SS 12000 API.
 *
 *  Reads, page by page (the API's pageToken), GET {url}/organisations,
 *  GET {url}/persons and, when asked, GET {url}/calendarEvents with
 *  expand=attendance from the first day of last month until now, into a
 *  soffa_ss12000_t. Every request carries the bearer token, verifies the
 *  server's TLS certificate (and host name) against the system's CAs or
 *  ca_file, follows no redirects, speaks only http and https (http only to
 *  this host), has a time limit, and takes at most 64 MiB a page. Any
 *  failure (a refused token, a server that closes the connection in the
 *  middle of a page, a page that is not SS 12000) ends the whole sync: the
 *  caller hands nothing over unless every page arrived and made sense.
 */
#ifndef SOFFA_SYNC_H
#define SOFFA_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_err.h"
#include "soffa_ss12000.h"

typedef struct {
    const char *url;          /* base URL, e.g. https://sis.example.se/ss12000/v2 */
    const char *token_file;   /* owner-only file with the bearer token */
    const char *ca_file;      /* NULL or "": the system's CAs */
    long timeout_ms;          /* per request */
    long page_size;           /* limit= */
    bool attendance;          /* also calendarEvents?expand=attendance */
} soffa_sync_opts_t;

/*  Reads the token: the file must be a regular file of this user with no
 *  permissions for others (0600 or stricter); the token is its first line,
 *  printable ASCII. Returns SOFFA_OK, SOFFA_ERR_PERMISSION, SOFFA_ERR_IO or
 *  SOFFA_ERR_BAD_FIELD, with why (Swedish). */
soffa_err_t soffa_sync_token(const char *file, char *out, size_t outlen, char *why, size_t whylen);

/*  Fetches everything into ss; *pages counts the pages read. Returns
 *  SOFFA_OK, or SOFFA_ERR_NOT_AUTHORISED (token refused), SOFFA_ERR_TRANSPORT
 *  (connection, TLS, a cut-off page), SOFFA_ERR_TIMEOUT, SOFFA_ERR_MALFORMED
 *  (a page that is not SS 12000), SOFFA_ERR_CONFIG (a bad URL) ..., with why
 *  naming the request and what to do. The token never appears in why. */
soffa_err_t soffa_sync_fetch(const soffa_sync_opts_t *o, soffa_ss12000_t *ss, size_t *pages, char *why,
                             size_t whylen);

#endif
