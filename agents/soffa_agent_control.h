/*  soffa_agent_control: the agent's control socket, for the `soffa`
 *  command line on the same host, and the reading and dispatch that
 *  soffa-web's restricted socket (soffa_agent_web) shares.
 *
 *  The socket is DATA_DIR/control.sock (or [agent] control), a ZeroMQ
 *  ROUTER over ipc made owner-only (0600, checked after the bind) whatever
 *  the umask. One JSON object each way (REQ -> ROUTER):
 *    C:{"cmd":"send", "message":{...}, "re":"ID|SEQ|last", "wait_ms":N}
 *                                  S:{ok, state:"accepted"|"queued", message_id, ...} (soffa_agent_outbox)
 *    C:{"cmd":"status", "broker":bool}   S:{ok, agent, role, connected, outbox, inbox, ..., broker:{...}}
 *    C:{"cmd":"inbox", "after":SEQ, "failed":bool, "limit":N}   S:{ok, messages:[...], overdue:[...]}
 *    C:{"cmd":"show", "id":"message id or seq"}   S:{ok, where:"inbox", record} / {ok, where:"sent", outcome...}
 *    C:{"cmd":"retry", "seq":SEQ}  S:{ok}: the hook gets the record again
 *    C:{"cmd":"replay", "request":"replay|history|access-log|stats", "filter":{...}}
 *                                  S:{ok, count, access_seq, records:[...]} (auditors; needs the broker)
 *    C:{"cmd":"erase", "subject_id":ID, "reason":CODE}
 *                                  S:{ok, count, first_seq, last_seq} (a data-protection officer; needs the broker)
 *    C:{"cmd":"school-...", ...}   a school's imports and review (lib/soffa_school.h)
 *  Refusals: {"ok":false, "code":NAME, "error":text}; a request without a
 *  "cmd" is MALFORMED, an unknown one INVALID_ARG.
 */
#ifndef SOFFA_AGENT_CONTROL_H
#define SOFFA_AGENT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_agent.h"
#include "soffa_agent_reply.h"
#include "soffa_err.h"

/*  Answers one request (the answer may come later, by a waiter). */
typedef void (*soffa_agent_control_fn)(soffa_agent_t *self, const soffa_agent_req_t *req);

/*  One command of a control socket. */
typedef struct {
    const char *name;              /* the request's "cmd" */
    bool prefix;                   /* name is a prefix: every "cmd" that begins with it */
    soffa_agent_control_fn run;
} soffa_agent_control_cmd_t;

/*  What a control socket accepts. */
typedef struct {
    const soffa_agent_control_cmd_t *cmds;  /* looked up in order; the first match runs */
    size_t n_cmds;
    size_t max_body;               /* a longer request is dropped unanswered */
    soffa_err_t unknown_code;      /* the refusal of a "cmd" not in cmds ... */
    const char *unknown_text;      /* ... and its text */
} soffa_agent_control_table_t;

/*  Binds the command line's control socket (self->control_path),
 *  owner-only. Returns SOFFA_OK, SOFFA_ERR_TRANSPORT (cannot bind) or
 *  SOFFA_ERR_PERMISSION (cannot be made 0600), with why. */
soffa_err_t soffa_agent_control_open(soffa_agent_t *self, char *why, size_t whylen);

/*  Answers what waits on the command line's socket. */
void soffa_agent_control_serve(soffa_agent_t *self);

/*  Reads up to 64 requests waiting on sock (a ROUTER: routing id, empty
 *  part, JSON) and runs each through table. A request with more parts is
 *  read whole and dropped; one whose routing id is longer than
 *  SOFFA_AGENT_RID_MAX or whose body exceeds table->max_body is dropped
 *  unanswered. */
void soffa_agent_control_read(soffa_agent_t *self, void *sock, const soffa_agent_control_table_t *table);

/*  Closes the command line's socket and removes its file. */
void soffa_agent_control_close(soffa_agent_t *self);

#endif
