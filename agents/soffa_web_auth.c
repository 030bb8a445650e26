/*  soffa_web_auth: accounts, sessions, CSRF tokens, login delays. */
#include "soffa_web_auth.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "soffa_log.h"
#include "soffa_time.h"

#define S_SESSIONS 1024
#define S_THROTTLE 2048
#define S_HASHERS 2

typedef struct {
    bool used;
    uint8_t token_hash[32];
    soffa_web_session_t s;
    int64_t created_ms, last_ms;
    char flash[512];
    bool flash_error;
} s_session_t;

typedef struct {
    char key[96];        /* "n:NAME" or "p:PEER" */
    int fails;
    int64_t until_ms;    /* no attempt before */
    int64_t last_ms;
} s_throttle_t;

struct soffa_web_auth {
    const soffa_web_cfg_t *cfg;
    pthread_mutex_t mu;
    pthread_cond_t hash_cv;
    int hashing;
    soffa_users_t users;
    struct timespec users_mtime;
    off_t users_size;
    bool users_loaded;
    s_session_t sessions[S_SESSIONS];
    s_throttle_t throttle[S_THROTTLE];
    char dummy_hash[crypto_pwhash_STRBYTES];   /* checked for unknown names: same cost */
};

static int64_t
s_now_ms(void)
{
    return soffa_mono_us() / 1000;
}

void
soffa_web_auth_random_hex(char *out, size_t n)
{
    uint8_t r[32];
    if (n > 32)
        n = 32;
    randombytes_buf(r, n);
    sodium_bin2hex(out, 2 * n + 1, r, n);
    sodium_memzero(r, sizeof r);
}

/* Reads the accounts file again when it changed (mu held). */
static void
s_reload(soffa_web_auth_t *self)
{
    struct stat st;
    if (stat(self->cfg->users_path, &st) != 0) {
        if (self->users.n)
            soffa_info("accounts file %s is gone: no one can sign in", self->cfg->users_path);
        soffa_users_fini(&self->users);
        self->users_loaded = true;
        self->users_size = -1;
        return;
    }
    if (self->users_loaded && st.st_mtim.tv_sec == self->users_mtime.tv_sec
        && st.st_mtim.tv_nsec == self->users_mtime.tv_nsec && st.st_size == self->users_size)
        return;
    soffa_users_t fresh;
    char why[600] = "";
    if (soffa_users_load(self->cfg->users_path, &fresh, why, sizeof why) != SOFFA_OK) {
        soffa_error("accounts not (re)loaded: %s; no one can sign in until it is fixed", why);
        soffa_users_fini(&self->users);
    } else {
        soffa_users_fini(&self->users);
        self->users = fresh;
        soffa_info("%zu account(s) read from %s", fresh.n, self->cfg->users_path);
    }
    self->users_mtime = st.st_mtim;
    self->users_size = st.st_size;
    self->users_loaded = true;
}

soffa_err_t
soffa_web_auth_new(soffa_web_auth_t **out, const soffa_web_cfg_t *cfg, char *why, size_t whylen)
{
    *out = NULL;
    if (sodium_init() < 0) {
        snprintf(why, whylen, "libsodium cannot start");
        return SOFFA_ERR_INTERNAL;
    }
    soffa_web_auth_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->cfg = cfg;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->hash_cv, NULL);
    char pw[33];
    soffa_web_auth_random_hex(pw, 16);
    if (crypto_pwhash_str(self->dummy_hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        free(self);
        snprintf(why, whylen, "out of memory for the password hash");
        return SOFFA_ERR_NOMEM;
    }
    pthread_mutex_lock(&self->mu);
    s_reload(self);
    pthread_mutex_unlock(&self->mu);
    *out = self;
    return SOFFA_OK;
}

void
soffa_web_auth_destroy(soffa_web_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_web_auth_t *self = *self_p;
    soffa_users_fini(&self->users);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->hash_cv);
    sodium_memzero(self, sizeof *self);
    free(self);
    *self_p = NULL;
}

/* ---- Login delay ---- */

static s_throttle_t *
s_throttle(soffa_web_auth_t *self, const char *key, bool create)
{
    s_throttle_t *oldest = &self->throttle[0];
    for (size_t i = 0; i < S_THROTTLE; i++) {
        s_throttle_t *t = &self->throttle[i];
        if (t->key[0] && !strcmp(t->key, key))
            return t;
        if (!t->key[0] || t->last_ms < oldest->last_ms)
            oldest = t;
    }
    if (!create)
        return NULL;
    memset(oldest, 0, sizeof *oldest);
    snprintf(oldest->key, sizeof oldest->key, "%s", key);
    return oldest;
}

static void
s_fail(soffa_web_auth_t *self, const char *key, int64_t now)
{
    s_throttle_t *t = s_throttle(self, key, true);
    t->fails++;
    int64_t delay = 1000;
    for (int i = 1; i < t->fails && delay < self->cfg->login_delay_max; i++)
        delay *= 2;
    if (delay > self->cfg->login_delay_max)
        delay = self->cfg->login_delay_max;
    t->until_ms = now + delay;
    t->last_ms = now;
}

static int64_t
s_wait_ms(soffa_web_auth_t *self, const char *key, int64_t now)
{
    s_throttle_t *t = s_throttle(self, key, false);
    return t && t->until_ms > now ? t->until_ms - now : 0;
}

/* ---- Sessions ---- */

static void
s_token_hash(const char *token, uint8_t out[32])
{
    crypto_generichash(out, 32, (const unsigned char *) token, strlen(token), NULL, 0);
}

static soffa_err_t
s_session_new(soffa_web_auth_t *self, const soffa_user_t *u, bool sso, char token[SOFFA_WEB_TOKEN_LEN + 1])
{
    int64_t now = s_now_ms();
    s_session_t *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < S_SESSIONS; i++) {
        s_session_t *s = &self->sessions[i];
        if (s->used && (now - s->last_ms > self->cfg->session_idle || now - s->created_ms > self->cfg->session_max))
            s->used = false;   /* ran out: the slot is free */
        if (!s->used && !slot)
            slot = s;
        if (s->used && (!oldest || s->last_ms < oldest->last_ms))
            oldest = s;
    }
    if (!slot)
        slot = oldest;   /* full: the least recently used session ends */
    memset(slot, 0, sizeof *slot);
    soffa_web_auth_random_hex(token, 32);
    s_token_hash(token, slot->token_hash);
    snprintf(slot->s.name, sizeof slot->s.name, "%s", u->name);
    slot->s.role = u->role;
    snprintf(slot->s.actor, sizeof slot->s.actor, "%s", u->actor);
    soffa_web_auth_random_hex(slot->s.csrf, 32);
    slot->s.sso = sso;
    slot->created_ms = slot->last_ms = now;
    slot->used = true;
    return SOFFA_OK;
}

static s_session_t *
s_find(soffa_web_auth_t *self, const char *token)
{
    if (!token || strlen(token) != SOFFA_WEB_TOKEN_LEN)
        return NULL;
    uint8_t h[32];
    s_token_hash(token, h);
    for (size_t i = 0; i < S_SESSIONS; i++)
        if (self->sessions[i].used && sodium_memcmp(self->sessions[i].token_hash, h, 32) == 0)
            return &self->sessions[i];
    return NULL;
}

soffa_err_t
soffa_web_auth_login(soffa_web_auth_t *self, const char *name, const char *password, const char *peer,
                     char token[SOFFA_WEB_TOKEN_LEN + 1], int *wait_s)
{
    *wait_s = 0;
    char nkey[96], pkey[96];
    snprintf(nkey, sizeof nkey, "n:%.64s", name ? name : "");
    /* A local peer is the reverse proxy that every person comes through:
     * only names are held back then, never everyone at once. */
    snprintf(pkey, sizeof pkey, "p:%.64s", peer ? peer : "");
    bool by_peer = peer != NULL;
    pthread_mutex_lock(&self->mu);
    int64_t now = s_now_ms();
    int64_t w = s_wait_ms(self, nkey, now), wp = by_peer ? s_wait_ms(self, pkey, now) : 0;
    if (wp > w)
        w = wp;
    if (w > 0) {
        pthread_mutex_unlock(&self->mu);
        *wait_s = (int) ((w + 999) / 1000);
        return SOFFA_ERR_UNAVAILABLE;
    }
    s_reload(self);
    const soffa_user_t *found = name && password ? soffa_users_find(&self->users, name) : NULL;
    soffa_user_t u;
    if (found)
        u = *found;
    /* At most S_HASHERS Argon2id checks at once (each takes 64 MiB). */
    while (self->hashing >= S_HASHERS)
        pthread_cond_wait(&self->hash_cv, &self->mu);
    self->hashing++;
    pthread_mutex_unlock(&self->mu);
    bool ok;
    if (found)
        ok = soffa_users_verify(&u, password);
    else
    {
        /* The same work as for a real name: the time does not tell which names exist. */
        if (crypto_pwhash_str_verify(self->dummy_hash, password ? password : "", password ? strlen(password) : 0) == 0)
            soffa_debug("a random password matched");
        ok = false;
    }
    pthread_mutex_lock(&self->mu);
    self->hashing--;
    pthread_cond_signal(&self->hash_cv);
    soffa_err_t rc;
    now = s_now_ms();
    if (ok) {
        s_throttle_t *t = s_throttle(self, nkey, false);
        if (t)
            memset(t, 0, sizeof *t);
        rc = s_session_new(self, &u, false, token);
        soffa_info("%s signed in (%s) from %s", u.actor, soffa_users_role_name(u.role), peer ? peer : "this host");
    } else {
        s_fail(self, nkey, now);
        if (by_peer)
            s_fail(self, pkey, now);
        rc = SOFFA_ERR_NOT_AUTHORISED;
        soffa_warn("failed sign-in from %s", peer ? peer : "this host");
    }
    pthread_mutex_unlock(&self->mu);
    sodium_memzero(&u, sizeof u);
    return rc;
}

soffa_err_t
soffa_web_auth_sso(soffa_web_auth_t *self, const char *name, char token[SOFFA_WEB_TOKEN_LEN + 1])
{
    pthread_mutex_lock(&self->mu);
    s_reload(self);
    const soffa_user_t *u = soffa_users_find(&self->users, name);
    soffa_err_t rc = u ? s_session_new(self, u, true, token) : SOFFA_ERR_NOT_FOUND;
    if (u)
        soffa_info("%s signed in through single sign-on", u->actor);
    pthread_mutex_unlock(&self->mu);
    return rc;
}

bool
soffa_web_auth_session(soffa_web_auth_t *self, const char *token, soffa_web_session_t *out, bool *expired)
{
    *expired = false;
    pthread_mutex_lock(&self->mu);
    s_session_t *s = s_find(self, token);
    bool ok = false;
    if (s) {
        int64_t now = s_now_ms();
        s_reload(self);
        const soffa_user_t *u = soffa_users_find(&self->users, s->s.name);
        if (now - s->last_ms > self->cfg->session_idle || now - s->created_ms > self->cfg->session_max) {
            *expired = true;
            s->used = false;
        } else if (!u || strcmp(u->actor, s->s.actor) != 0) {
            s->used = false;   /* the account was removed (or made anew) */
        } else {
            s->s.role = u->role;   /* a changed role counts at once */
            s->last_ms = now;
            *out = s->s;
            ok = true;
        }
    }
    pthread_mutex_unlock(&self->mu);
    return ok;
}

bool
soffa_web_auth_alive(soffa_web_auth_t *self, const char *token)
{
    pthread_mutex_lock(&self->mu);
    s_session_t *s = s_find(self, token);
    int64_t now = s_now_ms();
    bool ok = s && now - s->last_ms <= self->cfg->session_idle && now - s->created_ms <= self->cfg->session_max;
    pthread_mutex_unlock(&self->mu);
    return ok;
}

bool
soffa_web_auth_csrf_ok(const soffa_web_session_t *s, const char *given)
{
    return given && strlen(given) == SOFFA_WEB_TOKEN_LEN && sodium_memcmp(given, s->csrf, SOFFA_WEB_TOKEN_LEN) == 0;
}

void
soffa_web_auth_logout(soffa_web_auth_t *self, const char *token)
{
    pthread_mutex_lock(&self->mu);
    s_session_t *s = s_find(self, token);
    if (s)
        memset(s, 0, sizeof *s);
    pthread_mutex_unlock(&self->mu);
}

void
soffa_web_auth_flash(soffa_web_auth_t *self, const char *token, const char *text, bool error)
{
    pthread_mutex_lock(&self->mu);
    s_session_t *s = s_find(self, token);
    if (s) {
        snprintf(s->flash, sizeof s->flash, "%s", text);
        s->flash_error = error;
    }
    pthread_mutex_unlock(&self->mu);
}

bool
soffa_web_auth_take_flash(soffa_web_auth_t *self, const char *token, char *out, size_t outlen, bool *error)
{
    pthread_mutex_lock(&self->mu);
    s_session_t *s = s_find(self, token);
    bool got = s && s->flash[0];
    if (got) {
        snprintf(out, outlen, "%s", s->flash);
        *error = s->flash_error;
        s->flash[0] = '\0';
    }
    pthread_mutex_unlock(&self->mu);
    return got;
}

bool
soffa_web_auth_actor_name(soffa_web_auth_t *self, const char *actor, char *out, size_t outlen)
{
    bool found = false;
    pthread_mutex_lock(&self->mu);
    s_reload(self);
    for (size_t i = 0; i < self->users.n && !found; i++) {
        if (!strcmp(self->users.v[i].actor, actor)) {
            snprintf(out, outlen, "%s", self->users.v[i].name);
            found = true;
        }
    }
    pthread_mutex_unlock(&self->mu);
    return found;
}
