/*  soffa_agent_web: the agent's second, restricted control socket, for
 *  soffa-web ([web] socket, owner-only like the command line's). Its whole
 *  command set is here, so that it can be read, and reviewed, in one place;
 *  it shares the request reader of soffa_agent_control and the send path
 *  of soffa_agent_outbox.
 *
 *  Grammar (REQ -> ROUTER over ipc, one JSON object each way):
 *    C:{"cmd":"whoami"}                         S:{ok, agent, role, mailbox, kommun, connected, due...}
 *    C:{"cmd":"list", "limit":N}                S:{ok, inbox:[record...], sent:[sent...], overdue:[...]}
 *    C:{"cmd":"show", "id":UUID}                S:{ok, where:"inbox"|"sent", record|sent} / NOT_FOUND
 *    C:{"cmd":"send", "message":{...}, "re":UUID, "wait_ms":N}   as the command line's send, but
 *                                                the message must name the person (sender.actor_ref)
 *    C:{"cmd":"wait", "inbox_after":SEQ, "sent_after":GEN, "wait_ms":N}
 *                                               S:{ok, inbox_last, sent_gen, connected} when either
 *                                                grew, or at the deadline
 *    C:{"cmd":"access_put", "actor":REF, "what":WORD, "message_id":UUID?, "subjects":[ID...]}
 *                                               S:{ok, seq}: durable before the answer
 *    C:{"cmd":"access_list", "subject":ID?, "actor":REF?, "what":WORD?, "limit":N, "ids_only":bool}
 *                                               S:{ok, entries:[{seq, at_us, actor, what, message_id,
 *                                                subjects:[ID or "#HASHPREFIX"]}...]} newest first
 *
 *  What this socket cannot do, by construction: replay or read the broker's
 *  history, retry hooks, read the agent's key or configuration, change or
 *  delete anything in the inbox, outbox or access log, or send a message
 *  that does not name the person who sent it.
 */
#ifndef SOFFA_AGENT_WEB_H
#define SOFFA_AGENT_WEB_H

#include <stddef.h>

#include "soffa_agent.h"
#include "soffa_err.h"

/*  Reads (or makes, on first start) DATA_DIR/access.key, which keys the
 *  youths' hashes in the site's access log, makes [web] dir and binds the
 *  socket. Returns SOFFA_OK, or SOFFA_ERR_STORE_IO / SOFFA_ERR_PERMISSION
 *  (the key), SOFFA_ERR_IO (the directory), SOFFA_ERR_TRANSPORT (the
 *  socket), with why. */
soffa_err_t soffa_agent_web_open(soffa_agent_t *self, char *why, size_t whylen);

/*  Answers what waits on the web's socket. */
void soffa_agent_web_serve(soffa_agent_t *self);

/*  Closes the socket, removes its file and wipes the access key. */
void soffa_agent_web_close(soffa_agent_t *self);

#endif
