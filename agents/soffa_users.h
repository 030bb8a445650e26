/*  soffa_users: the people of one site who may use its web inbox.
 *
 *  One text file per site (the [web] users setting), owner-only, one account
 *  a line:  NAME ROLE ACTOR_REF HASH
 *    NAME       1..64 of a-z 0-9 . _ - (the login name; never leaves the site)
 *    ROLE       caseworker or lead (a lead also sees who looked at what)
 *    ACTOR_REF  a random pseudonym ("u-" and 16 hex digits), the only thing
 *               written into messages and the access log about the person
 *    HASH       libsodium crypto_pwhash_str (Argon2id), or "-" for an account
 *               that signs in only through the single sign-on header
 *  Writes go to a temporary file that is synced and renamed over the old one,
 *  under a lock, so a reader never sees half a file.
 */
#ifndef SOFFA_USERS_H
#define SOFFA_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_err.h"

#define SOFFA_USER_NAME_MAX 64
#define SOFFA_USER_HASH_MAX 128
#define SOFFA_USER_PASSWORD_MIN 10

typedef enum { SOFFA_USER_CASEWORKER = 1, SOFFA_USER_LEAD = 2 } soffa_user_role_t;

typedef struct {
    char name[SOFFA_USER_NAME_MAX + 1];
    soffa_user_role_t role;
    char actor[24];                  /* "u-" + 16 hex */
    char hash[SOFFA_USER_HASH_MAX];  /* "-" when only single sign-on */
} soffa_user_t;

typedef struct {
    soffa_user_t *v;
    size_t n;
} soffa_users_t;

/*  Reads the accounts file. A missing file is an empty list. A file others
 *  may read or write is refused (SOFFA_ERR_PERMISSION), as is a malformed
 *  line (SOFFA_ERR_CONFIG, `why` names the line). Free with soffa_users_fini. */
soffa_err_t soffa_users_load(const char *path, soffa_users_t *out, char *why, size_t whylen);
void soffa_users_fini(soffa_users_t *users);

/*  The account called name, or NULL (borrowed from users). */
const soffa_user_t *soffa_users_find(const soffa_users_t *users, const char *name);

/*  True for a valid login name. */
bool soffa_users_name_ok(const char *name);

/*  "caseworker"/"lead" and back (0 when unknown). */
const char *soffa_users_role_name(soffa_user_role_t role);
soffa_user_role_t soffa_users_role_parse(const char *name);

/*  True when password matches the account (constant-time in libsodium).
 *  Always false for single-sign-on-only accounts. */
bool soffa_users_verify(const soffa_user_t *u, const char *password);

/*  Adds an account (password NULL: single sign-on only), changes a password,
 *  or removes an account, rewriting the file atomically. Returns SOFFA_OK,
 *  SOFFA_ERR_EXISTS, SOFFA_ERR_NOT_FOUND, SOFFA_ERR_BAD_FIELD (name or
 *  password too short) or an I/O error, with `why` for people. */
soffa_err_t soffa_users_add(const char *path, const char *name, soffa_user_role_t role, const char *password,
                            char *why, size_t whylen);
soffa_err_t soffa_users_passwd(const char *path, const char *name, const char *password, char *why, size_t whylen);
soffa_err_t soffa_users_remove(const char *path, const char *name, char *why, size_t whylen);

/*  `soffa user add|passwd|remove|list ...`: argv[0] is "user". net/agent
 *  come from the command line's --net DIR --agent NAME (may be NULL).
 *  Returns the exit status. */
int soffa_users_command(int argc, char **argv, const char *net, const char *agent);

#endif
