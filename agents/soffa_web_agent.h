/*  soffa_web_agent: soffa-web's line to its agent's restricted control
 *  socket ([web] agent_socket), and the live view.
 *
 *  Each call opens a REQ socket (ZeroMQ sockets are not shared between the
 *  HTTP threads), sends one JSON request and waits for one answer. A watcher
 *  thread long-polls the agent ("wait") and bumps a generation number when
 *  the inbox or the sent messages change; the Server-Sent Events streams
 *  wait on it.
 */
#ifndef SOFFA_WEB_AGENT_H
#define SOFFA_WEB_AGENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "soffa_err.h"

typedef struct soffa_web_agent soffa_web_agent_t;

soffa_err_t soffa_web_agent_new(soffa_web_agent_t **out, const char *socket_path);

/*  Sends req (takes ownership) and returns the answer (new reference), or
 *  NULL when the agent does not answer within timeout_ms. */
json_t *soffa_web_agent_call(soffa_web_agent_t *self, json_t *req, int timeout_ms);

/*  Starts the watcher thread. */
soffa_err_t soffa_web_agent_watch_start(soffa_web_agent_t *self);

/*  Waits until the generation differs from `seen`, the wait is over, or the
 *  agent object is stopping; returns the generation. */
uint64_t soffa_web_agent_watch_wait(soffa_web_agent_t *self, uint64_t seen, int timeout_ms);

/*  The current generation. */
uint64_t soffa_web_agent_generation(soffa_web_agent_t *self);

/*  True once soffa_web_agent_stop was called. */
bool soffa_web_agent_stopping(soffa_web_agent_t *self);

/*  Wakes every waiter and stops the watcher (before the HTTP server stops). */
void soffa_web_agent_stop(soffa_web_agent_t *self);

void soffa_web_agent_destroy(soffa_web_agent_t **self_p);

#endif
