/*  soffa_idtable: the configured agents (see soffa_idtable.h). */
#include "soffa_idtable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "soffa_id.h"
#include "soffa_keys.h"
#include "soffa_map.h"

#define S_MAX_AGENTS 8192

/* One [agent NAME] section as written, before it is checked. */
typedef struct {
    char public_key[512];          /* Z85 keys or .pub/.key files, comma-separated */
    char role[16];
    char kommun[8];
    char unit[1024];
    char orgnr[16];
    char scope[SOFFA_SCOPE_MAX];
    bool span_controllers;
    char team[24];
    char provider_kind[24];        /* provider: komvux, labour_market_unit, ... */
} s_agent_cfg_t;

static const soffa_cfg_key_t s_agent_keys[] = {
    {"public_key", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_agent_cfg_t, public_key), 512,
     "the agent's public key (Z85) or its .pub file; while its key is rotated, the new and the old one, comma-separated"},
    {"role", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_agent_cfg_t, role), 16, "school, kaa, social, af, provider or audit"},
    {"provider_kind", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, provider_kind), 24, "provider: komvux, labour_market_unit, guidance_centre, folkhogskola, navigator_centre, samordningsforbund or school_programme"},
    {"kommun", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, kommun), 8, "municipality code the agent serves"},
    {"unit", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, unit), 1024, "unit codes, comma-separated: a school's skolenhetskoder (required), else local units"},
    {"orgnr", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, orgnr), 16, "organisationsnummer messages may claim"},
    {"scope", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, scope), SOFFA_SCOPE_MAX, "audit: mailbox patterns it may replay"},
    {"team", SOFFA_CFG_STR, "", 0, 0, offsetof(s_agent_cfg_t, team), 24, "kaa: its team of the municipality's KAA, one of [teams K] teams (inbox kaa/K/TEAM)"},
    {"span_controllers", SOFFA_CFG_BOOL, "no", 0, 0, offsetof(s_agent_cfg_t, span_controllers), 0, "audit: the scope may cover more than one data controller's records"},
};

struct soffa_idtable {
    soffa_ident_t **v;             /* the agents, in the order of the file (one reference each) */
    s_agent_cfg_t **stash;         /* the sections as written, until soffa_idtable_finish */
    size_t n, cap;
    soffa_map_t *by_name;          /* name -> soffa_ident_t */
    soffa_map_t *by_key;           /* 32-byte public key -> soffa_ident_t */
    soffa_map_t *readers;          /* inbox -> NULL-terminated array of identities reading it */
};

soffa_idtable_t *
soffa_idtable_new(void)
{
    soffa_idtable_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->by_name = soffa_map_new();
    self->by_key = soffa_map_new();
    self->readers = soffa_map_new();
    if (!self->by_name || !self->by_key || !self->readers)
        soffa_idtable_destroy(&self);
    return self;
}

/* ---- Loading ---------------------------------------------------------------------- */

/* The longest agent name: audit/access/school/NAME fits SOFFA_NAME_MAX. */
#define S_AGENT_NAME_MAX 42

static void *
s_add(void *ctx, const char *name)
{
    soffa_idtable_t *self = ctx;
    if (self->n >= S_MAX_AGENTS || strlen(name) >= SOFFA_NAME_MAX || strchr(name, '|'))
        return NULL;
    if (self->n == self->cap) {
        size_t cap = self->cap ? 2 * self->cap : 16;
        soffa_ident_t **v = realloc(self->v, cap * sizeof *v);
        if (!v)
            return NULL;
        self->v = v;
        s_agent_cfg_t **st = realloc(self->stash, cap * sizeof *st);
        if (!st)
            return NULL;
        self->stash = st;
        self->cap = cap;
    }
    soffa_ident_t *ident = calloc(1, sizeof *ident);
    s_agent_cfg_t *a = calloc(1, sizeof *a);
    if (!ident || !a) {
        free(ident);
        free(a);
        return NULL;
    }
    snprintf(ident->id.name, sizeof ident->id.name, "%s", name);
    ident->refs = 1;
    self->v[self->n] = ident;
    self->stash[self->n] = a;
    self->n++;
    return a;
}

soffa_cfg_section_t
soffa_idtable_section(soffa_idtable_t *self)
{
    return (soffa_cfg_section_t) {"agent", true, s_agent_keys, sizeof s_agent_keys / sizeof *s_agent_keys, NULL, s_add,
                                  self};
}

/* Reads one entry of public_key (a Z85 key or a key file) into z85. */
static bool
s_key(const char *config_path, const char *entry, char z85[41])
{
    if (soffa_keys_valid_z85(entry)) {
        memcpy(z85, entry, 41);
        return true;
    }
    char path[1024];
    return soffa_cfg_path(config_path, entry, path, sizeof path) && soffa_keys_load_public(path, z85) == SOFFA_OK;
}

/* The keys of public_key, comma-separated, blanks around each allowed. */
static soffa_err_t
s_keys(soffa_idtable_t *self, soffa_ident_t *ident, const char *list, const char *config_path, char *why,
       size_t whylen)
{
    const char *name = ident->id.name;
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, ",");
        char entry[512];
        snprintf(entry, sizeof entry, "%.*s", (int) len, p);
        for (size_t e = strlen(entry); e && (entry[e - 1] == ' ' || entry[e - 1] == '\t'); e--)
            entry[e - 1] = '\0';
        if (!entry[0]) {
            snprintf(why, whylen, "%s: [agent %s] public_key has an empty entry; list keys as KEY or NEW, OLD",
                     config_path, name);
            return SOFFA_ERR_CONFIG;
        }
        if (ident->n_keys == SOFFA_IDENT_KEYS) {
            snprintf(why, whylen, "%s: [agent %s] public_key lists more than %d keys", config_path, name,
                     SOFFA_IDENT_KEYS);
            return SOFFA_ERR_CONFIG;
        }
        char z85[41];
        if (!s_key(config_path, entry, z85)) {
            snprintf(why, whylen, "%s: [agent %s] public_key '%.100s' is neither a Z85 key nor a readable key file",
                     config_path, name, entry);
            return SOFFA_ERR_CONFIG;
        }
        uint8_t *raw = ident->keys[ident->n_keys];
        zmq_z85_decode(raw, z85);
        const soffa_ident_t *other = soffa_map_get(self->by_key, raw, 32);
        if (other || soffa_idtable_has_key(ident, raw)) {
            snprintf(why, whylen, "%s: [agent %s] uses a public key %s already has", config_path, name,
                     other && other != ident ? other->id.name : "it");
            return SOFFA_ERR_CONFIG;
        }
        if (!ident->n_keys)
            memcpy(ident->id.public_key, z85, 41);
        ident->n_keys++;
        if (soffa_map_put(self->by_key, raw, 32, ident) != SOFFA_OK)
            return SOFFA_ERR_NOMEM;
        p += len;
        if (!*p)
            return SOFFA_OK;
        p++;
    }
}

static soffa_err_t
s_convert(soffa_idtable_t *self, soffa_ident_t *ident, const s_agent_cfg_t *a, const char *config_path, char *why,
          size_t whylen)
{
    soffa_identity_t *id = &ident->id;
    id->role = soffa_role_from_name(a->role);
    if (id->role == SOFFA_ROLE_NONE || id->role == SOFFA_ROLE_BROKER) {
        snprintf(why, whylen, "%s: [agent %s] role must be school, kaa, social, af, provider or audit, not '%s'",
                 config_path, id->name, a->role);
        return SOFFA_ERR_CONFIG;
    }
    /* A provider's access log is audit/access/provider/NAME. */
    if (id->role == SOFFA_ROLE_PROVIDER && strlen(id->name) > SOFFA_PROVIDER_NAME_MAX) {
        snprintf(why, whylen, "%s: [agent %s] a provider's name may be at most %d characters; choose a shorter one",
                 config_path, id->name, SOFFA_PROVIDER_NAME_MAX);
        return SOFFA_ERR_CONFIG;
    }
    id->provider_kind = soffa_provider_kind_from_name(a->provider_kind);
    if (id->role == SOFFA_ROLE_PROVIDER && id->provider_kind == SOFFA_PVK_NONE) {
        snprintf(why, whylen,
                 "%s: [agent %s] is a provider and needs provider_kind = komvux, labour_market_unit, "
                 "guidance_centre, folkhogskola, navigator_centre, samordningsforbund or school_programme%s%s%s",
                 config_path, id->name, a->provider_kind[0] ? " (not '" : "", a->provider_kind,
                 a->provider_kind[0] ? "')" : "");
        return SOFFA_ERR_CONFIG;
    }
    if (id->role != SOFFA_ROLE_PROVIDER && a->provider_kind[0]) {
        snprintf(why, whylen, "%s: [agent %s] provider_kind is for providers (role = provider) only", config_path,
                 id->name);
        return SOFFA_ERR_CONFIG;
    }
    /* An agent's name fits every mailbox made of it whole (a school's
     * access log is audit/access/school/NAME), or two schools with the same
     * first letters would share one. The configuration reader cuts section
     * names at S_AGENT_NAME_MAX + 1 characters: a name that long was longer. */
    if (strlen(id->name) > S_AGENT_NAME_MAX) {
        snprintf(why, whylen, "%s: [agent %s...] an agent's name may be at most %d characters; choose a shorter one",
                 config_path, id->name, S_AGENT_NAME_MAX);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role != SOFFA_ROLE_AUDIT && soffa_kommun_check(a->kommun) != SOFFA_OK) {
        snprintf(why, whylen, "%s: [agent %s] needs kommun = one of the 290 municipality codes ('%s' is not)",
                 config_path, id->name, a->kommun);
        return SOFFA_ERR_CONFIG;
    }
    char uwhy[128];
    if (soffa_policy_set_units(id, a->unit, uwhy, sizeof uwhy) != SOFFA_OK) {
        snprintf(why, whylen, "%s: [agent %s] unit must list %s, comma-separated: %s", config_path, id->name,
                 id->role == SOFFA_ROLE_SCHOOL ? "8-digit school unit codes" : "unit codes", uwhy);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role == SOFFA_ROLE_SCHOOL && !id->n_units) {
        snprintf(why, whylen, "%s: [agent %s] is a school and needs unit = its school unit code(s) (skolenhetskod)",
                 config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    if (a->orgnr[0] && soffa_orgnr_parse(a->orgnr, id->orgnr) != SOFFA_OK) {
        snprintf(why, whylen,
                 "%s: [agent %s] orgnr must be an organisationsnummer (10 digits, NNNNNN-NNNN allowed) "
                 "with a valid check digit",
                 config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role == SOFFA_ROLE_AUDIT && !a->scope[0]) {
        snprintf(why, whylen, "%s: [agent %s] is an auditor and needs scope = the mailboxes it may replay (e.g. kaa/1419, kaa-journal/1419, social/1419)",
                 config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    if (id->role != SOFFA_ROLE_AUDIT && (a->scope[0] || a->span_controllers)) {
        snprintf(why, whylen, "%s: [agent %s] %s is for auditors only", config_path, id->name,
                 a->scope[0] ? "scope" : "span_controllers");
        return SOFFA_ERR_CONFIG;
    }
    if (a->team[0] && (strlen(a->team) > 16 || a->team[0] < 'a' || a->team[0] > 'z'
                       || strspn(a->team, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(a->team))) {
        snprintf(why, whylen, "%s: [agent %s] team must be a team name: 1 to 16 of a-z 0-9 -, starting with a letter "
                 "('%s' is not)", config_path, id->name, a->team);
        return SOFFA_ERR_CONFIG;
    }
    if (a->team[0] && id->role != SOFFA_ROLE_KAA) {
        snprintf(why, whylen, "%s: [agent %s] team is for KAA agents only", config_path, id->name);
        return SOFFA_ERR_CONFIG;
    }
    snprintf(id->team, sizeof id->team, "%.16s", a->team);
    id->span_controllers = a->span_controllers;
    snprintf(id->kommun, sizeof id->kommun, "%.4s", a->kommun);
    snprintf(id->scope, sizeof id->scope, "%s", a->scope);
    return s_keys(self, ident, a->public_key, config_path, why, whylen);
}

/* Which identities read each inbox (for the lag of mailboxes nobody is
 * connected to). */
static soffa_err_t
s_readers_build(soffa_idtable_t *self)
{
    for (size_t i = 0; i < self->n; i++) {
        char inbox[SOFFA_NAME_MAX];
        soffa_policy_inbox(&self->v[i]->id, inbox);
        if (!inbox[0])
            continue;
        const soffa_identity_t **old = soffa_map_sget(self->readers, inbox);
        size_t n = 0;
        while (old && old[n])
            n++;
        const soffa_identity_t **v = realloc(old, (n + 2) * sizeof *v);
        if (!v)
            return SOFFA_ERR_NOMEM;
        v[n] = &self->v[i]->id;
        v[n + 1] = NULL;
        if (soffa_map_sput(self->readers, inbox, v) != SOFFA_OK) {
            free(v);
            return SOFFA_ERR_NOMEM;
        }
    }
    return SOFFA_OK;
}

/* Each auditor reads one data controller's records, unless configured to
 * span them (issue 13, rule 11); the check sets its controller. It needs
 * every agent of the file, in one array. */
static soffa_err_t
s_scopes_check(soffa_idtable_t *self, const char *config_path, char *why, size_t whylen)
{
    soffa_identity_t *all = calloc(self->n ? self->n : 1, sizeof *all);
    if (!all)
        return SOFFA_ERR_NOMEM;
    for (size_t i = 0; i < self->n; i++)
        all[i] = self->v[i]->id;
    soffa_err_t rc = SOFFA_OK;
    for (size_t i = 0; rc == SOFFA_OK && i < self->n; i++) {
        char swhy[600];
        soffa_identity_t *id = &self->v[i]->id;
        if (id->role == SOFFA_ROLE_AUDIT
            && (rc = soffa_policy_scope_check(id, all, self->n, swhy, sizeof swhy)) != SOFFA_OK)
            snprintf(why, whylen, "%s: [agent %s] %s", config_path, id->name, swhy);
    }
    free(all);
    return rc;
}

soffa_err_t
soffa_idtable_finish(soffa_idtable_t *self, const char *config_path, soffa_err_t load_rc, char *why, size_t whylen)
{
    soffa_err_t rc = load_rc;
    for (size_t i = 0; i < self->n; i++) {
        if (rc == SOFFA_OK)
            rc = s_convert(self, self->v[i], self->stash[i], config_path, why, whylen);
        if (rc == SOFFA_OK && soffa_map_sput(self->by_name, self->v[i]->id.name, self->v[i]) != SOFFA_OK)
            rc = SOFFA_ERR_NOMEM;
        free(self->stash[i]);
        self->stash[i] = NULL;
    }
    if (rc == SOFFA_OK)
        rc = s_scopes_check(self, config_path, why, whylen);
    if (rc == SOFFA_OK)
        rc = s_readers_build(self);
    return rc;
}

/* ---- Lookups ----------------------------------------------------------------------- */

soffa_ident_t *
soffa_idtable_by_name(const soffa_idtable_t *self, const char *name)
{
    return soffa_map_sget(self->by_name, name);
}

soffa_ident_t *
soffa_idtable_by_key(const soffa_idtable_t *self, const uint8_t key[32])
{
    return soffa_map_get(self->by_key, key, 32);
}

size_t
soffa_idtable_size(const soffa_idtable_t *self)
{
    return self->n;
}

soffa_ident_t *
soffa_idtable_at(const soffa_idtable_t *self, size_t i)
{
    return i < self->n ? self->v[i] : NULL;
}

const soffa_identity_t *const *
soffa_idtable_readers(const soffa_idtable_t *self, const char *mailbox)
{
    return soffa_map_sget(self->readers, mailbox);
}

bool
soffa_idtable_same(const soffa_ident_t *a, const soffa_ident_t *b)
{
    const soffa_identity_t *x = &a->id, *y = &b->id;
    if (strcmp(x->name, y->name) || x->role != y->role || strcmp(x->kommun, y->kommun) || strcmp(x->unit, y->unit)
        || x->n_units != y->n_units || strcmp(x->orgnr, y->orgnr) || strcmp(x->scope, y->scope)
        || x->span_controllers != y->span_controllers || strcmp(x->controller, y->controller)
        || strcmp(x->team, y->team) || x->provider_kind != y->provider_kind)
        return false;
    for (size_t i = 0; i < x->n_units; i++)
        if (strcmp(x->units[i], y->units[i]))
            return false;
    return true;
}

bool
soffa_idtable_has_key(const soffa_ident_t *ident, const uint8_t key[32])
{
    for (size_t i = 0; i < ident->n_keys; i++)
        if (memcmp(ident->keys[i], key, 32) == 0)
            return true;
    return false;
}

/* ---- Reload ------------------------------------------------------------------------ */

static void
s_replace(soffa_idtable_t *self, soffa_ident_t *from, soffa_ident_t *to)
{
    soffa_map_sput(self->by_name, to->id.name, to);
    for (size_t k = 0; k < to->n_keys; k++)
        soffa_map_put(self->by_key, to->keys[k], 32, to);
    /* The same settings: the same inbox. */
    char inbox[SOFFA_NAME_MAX];
    soffa_policy_inbox(&to->id, inbox);
    const soffa_identity_t **v = inbox[0] ? soffa_map_sget(self->readers, inbox) : NULL;
    for (size_t i = 0; v && v[i]; i++)
        if (v[i] == &from->id)
            v[i] = &to->id;
}

size_t
soffa_idtable_carry_over(soffa_idtable_t *into, const soffa_idtable_t *from)
{
    size_t moved = 0;
    for (size_t i = 0; i < into->n; i++) {
        soffa_ident_t *fresh = into->v[i];
        soffa_ident_t *old = soffa_idtable_by_name(from, fresh->id.name);
        if (!old || !soffa_idtable_same(old, fresh))
            continue;
        /* The old agent takes the keys the file now names. */
        memcpy(old->keys, fresh->keys, sizeof old->keys);
        old->n_keys = fresh->n_keys;
        memcpy(old->id.public_key, fresh->id.public_key, sizeof old->id.public_key);
        soffa_ident_ref(old);
        into->v[i] = old;
        s_replace(into, fresh, old);
        soffa_ident_unref(&fresh);
        moved++;
    }
    return moved;
}

/* ---- References --------------------------------------------------------------------- */

void
soffa_ident_ref(soffa_ident_t *ident)
{
    ident->refs++;
}

void
soffa_ident_unref(soffa_ident_t **ident_p)
{
    if (!ident_p || !*ident_p)
        return;
    soffa_ident_t *ident = *ident_p;
    if (--ident->refs == 0)
        free(ident);
    *ident_p = NULL;
}

static int
s_free_value(void *ctx, const void *k, size_t kl, void *v)
{
    (void) ctx;
    (void) k;
    (void) kl;
    free(v);
    return 0;
}

void
soffa_idtable_destroy(soffa_idtable_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_idtable_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++) {
        soffa_ident_unref(&self->v[i]);
        if (self->stash)
            free(self->stash[i]);
    }
    free(self->v);
    free(self->stash);
    if (self->readers)
        soffa_map_each(self->readers, s_free_value, NULL);
    soffa_map_destroy(&self->readers);
    soffa_map_destroy(&self->by_name);
    soffa_map_destroy(&self->by_key);
    free(self);
    *self_p = NULL;
}
