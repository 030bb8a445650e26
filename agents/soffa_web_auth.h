/*  soffa_web_auth: who is at the keyboard of soffa-web.
 *
 *  Accounts come from the site's accounts file (soffa_users), read again
 *  whenever it changes. A login makes a session: a random 256-bit token in
 *  an HttpOnly, Secure, SameSite=Strict cookie, of which only a hash is kept
 *  here; the session ends after [web] session_idle without use, after
 *  session_max in any case, at logout, and when its account is removed.
 *  Every session carries a CSRF token that every form must send back.
 *
 *  Failed logins make the next attempt wait, per name and (for peers not on
 *  this host: a local reverse proxy carries everyone) per peer address:
 *  1 s after the first failure, doubling up to [web] login_delay_max; an
 *  attempt during the wait is refused without looking at the password.
 *  At most two password checks (Argon2id, 64 MiB each) run at once.
 *
 *  Single sign-on: with [web] trusted_header set, a request from this host
 *  (loopback or the unix socket) carrying that header is the named account,
 *  which must exist; the same header from anywhere else is refused.
 */
#ifndef SOFFA_WEB_AUTH_H
#define SOFFA_WEB_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_err.h"
#include "soffa_users.h"
#include "soffa_web_cfg.h"

#define SOFFA_WEB_TOKEN_LEN 64   /* hex characters of a session token */

typedef struct soffa_web_auth soffa_web_auth_t;

/*  A copy of one session, for the page being built. */
typedef struct {
    char name[SOFFA_USER_NAME_MAX + 1];
    soffa_user_role_t role;
    char actor[24];
    char csrf[SOFFA_WEB_TOKEN_LEN + 1];
    bool sso;                      /* made from the trusted header */
} soffa_web_session_t;

soffa_err_t soffa_web_auth_new(soffa_web_auth_t **out, const soffa_web_cfg_t *cfg, char *why, size_t whylen);
void soffa_web_auth_destroy(soffa_web_auth_t **self_p);

/*  Checks a password login from peer (NULL for a peer on this host).
 *  Returns SOFFA_OK with a new session's
 *  token, SOFFA_ERR_NOT_AUTHORISED (wrong name or password: the same answer
 *  for both), or SOFFA_ERR_UNAVAILABLE with *wait_s seconds still to wait. */
soffa_err_t soffa_web_auth_login(soffa_web_auth_t *self, const char *name, const char *password, const char *peer,
                                 char token[SOFFA_WEB_TOKEN_LEN + 1], int *wait_s);

/*  Makes a session for an account named by the trusted header (the caller
 *  has checked the peer). SOFFA_ERR_NOT_FOUND when there is no such account. */
soffa_err_t soffa_web_auth_sso(soffa_web_auth_t *self, const char *name, char token[SOFFA_WEB_TOKEN_LEN + 1]);

/*  Finds the live session of token and marks it used. False when there is
 *  none; *expired says it existed and ran out (idle or max). */
bool soffa_web_auth_session(soffa_web_auth_t *self, const char *token, soffa_web_session_t *out, bool *expired);

/*  True while the session of token lives; does not count as use (a live
 *  stream must not keep an idle session open). */
bool soffa_web_auth_alive(soffa_web_auth_t *self, const char *token);

/*  True when given equals the session's CSRF token (constant time). */
bool soffa_web_auth_csrf_ok(const soffa_web_session_t *s, const char *given);

void soffa_web_auth_logout(soffa_web_auth_t *self, const char *token);

/*  A one-time note for the session's next page (what happened to a form). */
void soffa_web_auth_flash(soffa_web_auth_t *self, const char *token, const char *text, bool error);
bool soffa_web_auth_take_flash(soffa_web_auth_t *self, const char *token, char *out, size_t outlen, bool *error);

/*  The login name of actor_ref, for the lead's view. False when unknown. */
bool soffa_web_auth_actor_name(soffa_web_auth_t *self, const char *actor, char *out, size_t outlen);

/*  Random hex of 2*n characters into out (n <= 32). */
void soffa_web_auth_random_hex(char *out, size_t n);

#endif
