/*  soffa_web_pages: what soffa-web shows and does, in Swedish.
 *
 *  Server-rendered pages (Inkorg, Meddelande with its thread and the forms
 *  of the site's role, Skickat, Ny signal for schools, Sök, Min enhet for a
 *  lead), the login, the live stream (Server-Sent Events) and the two static
 *  files (/app.css, /app.js). Every page that shows a young person's
 *  identity is recorded in the site's access log through the agent before
 *  it is sent. Every POST carries the session's CSRF token; forms build
 *  messages with the same schema coercion and validation as the command
 *  line, and the broker decides.
 */
#ifndef SOFFA_WEB_PAGES_H
#define SOFFA_WEB_PAGES_H

#include "soffa_err.h"
#include "soffa_web_agent.h"
#include "soffa_web_auth.h"
#include "soffa_web_cfg.h"
#include "soffa_web_http.h"

typedef struct soffa_web_pages soffa_web_pages_t;

soffa_err_t soffa_web_pages_new(soffa_web_pages_t **out, const soffa_web_cfg_t *cfg, soffa_web_auth_t *auth,
                                soffa_web_agent_t *agent);

/*  The request handler (a soffa_web_handler_t; ctx is the pages object). */
void soffa_web_pages_handle(void *ctx, const soffa_web_req_t *req, soffa_web_resp_t *resp);

void soffa_web_pages_destroy(soffa_web_pages_t **self_p);

#endif
