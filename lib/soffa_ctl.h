/*  soffa_ctl: one request to an agent's control socket.
 *
 *  The command line and soffa-web talk to a running agent over a local
 *  ZeroMQ REQ socket (ipc, owner-only), one JSON object each way. This is
 *  the caller's side of one such exchange.
 */
#ifndef SOFFA_CTL_H
#define SOFFA_CTL_H

#include <jansson.h>

/*  Sends req (stolen: released here whatever happens) to the REP socket at
 *  endpoint ("ipc://PATH") using ZeroMQ context ctx, and waits at most
 *  timeout_ms for the answer. Returns the answer (the caller releases it),
 *  or NULL when nothing came back in time or the answer was not JSON. */
json_t *soffa_ctl_call(void *ctx, const char *endpoint, json_t *req, int timeout_ms);

#endif
