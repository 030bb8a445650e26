/*  soffa_teams: a municipality's KAA split into teams (see soffa_teams.h). */
#include "soffa_teams.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_id.h"

#define S_MAX_KOMMUNER 290
#define S_TEAM_LEN 17

/* A [teams K] section as written. */
typedef struct {
    char kommun[8];
    char teams[512];
    char rule[16];
    char intake[24];
    char schools[4096];
    char districts[4096];
} s_raw_t;

/* A code (school unit or district) and the team it goes to. */
typedef struct {
    char code[9];
    int team;
} s_route_t;

/* One municipality's teams, checked. */
typedef struct {
    char kommun[5];
    soffa_teams_rule_t rule;
    char teams[SOFFA_TEAMS_PER_KOMMUN][S_TEAM_LEN];
    size_t n_teams;
    int intake;
    s_route_t schools[SOFFA_TEAMS_ROUTES];
    size_t n_schools;
    s_route_t districts[SOFFA_TEAMS_ROUTES];
    size_t n_districts;
} s_kommun_t;

struct soffa_teams {
    s_raw_t *raw[S_MAX_KOMMUNER];
    s_kommun_t *k[S_MAX_KOMMUNER];
    size_t n;
};

static const soffa_cfg_key_t s_keys[] = {
    {"teams", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_raw_t, teams), 512,
     "the municipality's KAA teams, comma-separated (a-z 0-9 -, e.g. hisingen, centrum, intag)"},
    {"rule", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_raw_t, rule), 16,
     "how a signal finds its team: school (by school unit), district (of the registered address) or intake"},
    {"intake", SOFFA_CFG_STR, NULL, 0, 0, offsetof(s_raw_t, intake), 24,
     "the team that takes what the rule does not place, and distributes"},
    {"schools", SOFFA_CFG_STR, "", 0, 0, offsetof(s_raw_t, schools), 4096,
     "rule = school: skolenhetskod:team, comma-separated"},
    {"districts", SOFFA_CFG_STR, "", 0, 0, offsetof(s_raw_t, districts), 4096,
     "rule = district: distriktskod:team, comma-separated"},
};

soffa_teams_t *
soffa_teams_new(void)
{
    return calloc(1, sizeof(soffa_teams_t));
}

static void *
s_add(void *ctx, const char *name)
{
    soffa_teams_t *self = ctx;
    if (self->n >= S_MAX_KOMMUNER || strlen(name) >= sizeof self->raw[0]->kommun)
        return NULL;
    s_raw_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->kommun, sizeof r->kommun, "%s", name);
    self->raw[self->n++] = r;
    return r;
}

soffa_cfg_section_t
soffa_teams_section(soffa_teams_t *self)
{
    return (soffa_cfg_section_t) {"teams", true, s_keys, sizeof s_keys / sizeof *s_keys, NULL, s_add, self};
}

/* A team name: 1 to 16 of a-z 0-9 -, starting with a letter. */
static bool
s_team_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n >= S_TEAM_LEN || s[0] < 'a' || s[0] > 'z')
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static int
s_team_index(const s_kommun_t *k, const char *team)
{
    for (size_t i = 0; i < k->n_teams; i++)
        if (!strcmp(k->teams[i], team))
            return (int) i;
    return -1;
}

/* The next entry of a comma-separated list into out (blanks trimmed);
 * false at the end. */
static bool
s_next(const char **p, char *out, size_t size, bool *too_long)
{
    while (**p == ' ' || **p == '\t' || **p == ',')
        (*p)++;
    if (!**p)
        return false;
    size_t n = strcspn(*p, ",");
    size_t e = n;
    while (e && ((*p)[e - 1] == ' ' || (*p)[e - 1] == '\t'))
        e--;
    *too_long = e >= size;
    snprintf(out, size, "%.*s", (int) (e < size ? e : size - 1), *p);
    *p += n;
    return true;
}

static soffa_err_t s_fail(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static soffa_err_t
s_fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return SOFFA_ERR_CONFIG;
}

/* The teams of k as "a, b, c", for a message. */
static const char *
s_team_list(const s_kommun_t *k, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0, len = 0; i < k->n_teams && len < size; i++, len = strlen(buf))
        snprintf(buf + len, size - len, "%s%s", i ? ", " : "", k->teams[i]);
    return buf;
}

/* The code:team pairs of a mapping (schools or districts) into routes. */
static soffa_err_t
s_routes(const char *path, s_kommun_t *k, const char *key, const char *list, bool school, s_route_t *routes,
         size_t *n, char *why, size_t whylen)
{
    const char *p = list;
    char entry[64];
    bool too_long;
    *n = 0;
    while (s_next(&p, entry, sizeof entry, &too_long)) {
        char *colon = strchr(entry, ':');
        if (too_long || !colon)
            return s_fail(why, whylen, "%s: [teams %s] %s: '%s' is not CODE:TEAM (e.g. %s:%s)", path, k->kommun, key,
                          entry, school ? "12345678" : "148012", k->teams[0]);
        *colon = '\0';
        const char *code = entry, *team = colon + 1;
        while (*team == ' ')
            team++;
        for (size_t e = strlen(entry); e && entry[e - 1] == ' '; e--)
            entry[e - 1] = '\0';
        bool ok = school ? soffa_skolenhet_check(code) == SOFFA_OK
                         : strlen(code) == 6 && strspn(code, "0123456789") == 6;
        if (!ok)
            return s_fail(why, whylen, "%s: [teams %s] %s: '%s' is not %s", path, k->kommun, key, code,
                          school ? "an 8-digit school unit code (skolenhetskod)" : "a 6-digit district code (distriktskod)");
        int t = s_team_index(k, team);
        char names[300];
        if (t < 0)
            return s_fail(why, whylen, "%s: [teams %s] %s: %s goes to team '%s', which is not one of teams (%s); "
                          "list the team or correct the name", path, k->kommun, key, code, team,
                          s_team_list(k, names, sizeof names));
        for (size_t i = 0; i < *n; i++)
            if (!strcmp(routes[i].code, code))
                return s_fail(why, whylen, "%s: [teams %s] %s: %s is mapped twice (to %s and %s); a %s goes to one team",
                              path, k->kommun, key, code, k->teams[routes[i].team], team,
                              school ? "school unit" : "district");
        if (*n >= SOFFA_TEAMS_ROUTES)
            return s_fail(why, whylen, "%s: [teams %s] %s: more than %d entries", path, k->kommun, key,
                          SOFFA_TEAMS_ROUTES);
        snprintf(routes[*n].code, sizeof routes[*n].code, "%.8s", code);
        routes[(*n)++].team = t;
    }
    return SOFFA_OK;
}

/* One [teams K] section, checked, into k. */
static soffa_err_t
s_convert(const char *path, const s_raw_t *r, s_kommun_t *k, char *why, size_t whylen)
{
    if (strlen(r->kommun) != 4 || soffa_kommun_check(r->kommun) != SOFFA_OK)
        return s_fail(why, whylen, "%s: [teams %s] must name one of the 290 municipality codes, e.g. [teams 1480]", path,
                      r->kommun);
    snprintf(k->kommun, sizeof k->kommun, "%.4s", r->kommun);
    const char *p = r->teams;
    char team[64];
    bool too_long;
    while (s_next(&p, team, sizeof team, &too_long)) {
        if (too_long || !s_team_name(team))
            return s_fail(why, whylen, "%s: [teams %s] teams: '%s' is not a team name (1 to 16 of a-z 0-9 -, starting "
                          "with a letter)", path, k->kommun, team);
        if (s_team_index(k, team) >= 0)
            return s_fail(why, whylen, "%s: [teams %s] teams: %s is listed twice", path, k->kommun, team);
        if (k->n_teams >= SOFFA_TEAMS_PER_KOMMUN)
            return s_fail(why, whylen, "%s: [teams %s] teams: more than %d teams", path, k->kommun,
                          SOFFA_TEAMS_PER_KOMMUN);
        snprintf(k->teams[k->n_teams++], S_TEAM_LEN, "%.16s", team);
    }
    if (k->n_teams < 2)
        return s_fail(why, whylen, "%s: [teams %s] teams: list at least two teams (one KAA needs no [teams] section)",
                      path, k->kommun);
    if (!strcmp(r->rule, "school"))
        k->rule = SOFFA_TEAMS_RULE_SCHOOL;
    else if (!strcmp(r->rule, "district"))
        k->rule = SOFFA_TEAMS_RULE_DISTRICT;
    else if (!strcmp(r->rule, "intake"))
        k->rule = SOFFA_TEAMS_RULE_INTAKE;
    else
        return s_fail(why, whylen, "%s: [teams %s] rule must be school, district or intake, not '%s'", path, k->kommun,
                      r->rule);
    k->intake = s_team_index(k, r->intake);
    if (k->intake < 0)
        return s_fail(why, whylen, "%s: [teams %s] intake: '%s' is not one of teams = %s; every signal the rule does "
                      "not place goes to the intake team", path, k->kommun, r->intake, r->teams);
    soffa_err_t rc = s_routes(path, k, "schools", r->schools, true, k->schools, &k->n_schools, why, whylen);
    if (rc == SOFFA_OK)
        rc = s_routes(path, k, "districts", r->districts, false, k->districts, &k->n_districts, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    if (k->rule == SOFFA_TEAMS_RULE_SCHOOL && (!k->n_schools || k->n_districts))
        return s_fail(why, whylen, "%s: [teams %s] rule = school maps school units: give schools = "
                      "skolenhetskod:team, ... and no districts", path, k->kommun);
    if (k->rule == SOFFA_TEAMS_RULE_DISTRICT && (!k->n_districts || k->n_schools))
        return s_fail(why, whylen, "%s: [teams %s] rule = district maps districts: give districts = "
                      "distriktskod:team, ... and no schools", path, k->kommun);
    if (k->rule == SOFFA_TEAMS_RULE_INTAKE && (k->n_schools || k->n_districts))
        return s_fail(why, whylen, "%s: [teams %s] rule = intake sends everything to the intake team: remove %s", path,
                      k->kommun, k->n_schools ? "schools" : "districts");
    return SOFFA_OK;
}

static const s_kommun_t *
s_find(const soffa_teams_t *self, const char *kommun)
{
    for (size_t i = 0; self && kommun && i < self->n; i++)
        if (self->k[i] && !strcmp(self->k[i]->kommun, kommun))
            return self->k[i];
    return NULL;
}

soffa_err_t
soffa_teams_finish(soffa_teams_t *self, const char *path, soffa_err_t load_rc, const soffa_identity_t *const *agents,
                   size_t n, char *why, size_t whylen)
{
    soffa_err_t rc = load_rc;
    for (size_t i = 0; rc == SOFFA_OK && i < self->n; i++) {
        self->k[i] = calloc(1, sizeof *self->k[i]);
        rc = self->k[i] ? s_convert(path, self->raw[i], self->k[i], why, whylen) : SOFFA_ERR_NOMEM;
    }
    for (size_t i = 0; i < self->n; i++) {
        free(self->raw[i]);
        self->raw[i] = NULL;
    }
    /* Every team has its agent, and only one. */
    for (size_t i = 0; rc == SOFFA_OK && i < self->n; i++) {
        const s_kommun_t *k = self->k[i];
        bool kaa = false;
        for (size_t a = 0; a < n; a++)
            kaa |= agents[a]->role == SOFFA_ROLE_KAA && !strcmp(agents[a]->kommun, k->kommun);
        if (!kaa) {
            rc = s_fail(why, whylen, "%s: [teams %s] the municipality has no KAA agent; add an [agent NAME] with "
                        "role = kaa, kommun = %s and team = one of %s for each team, or remove [teams %s]",
                        path, k->kommun, k->kommun, k->teams[0], k->kommun);
            break;
        }
        for (size_t t = 0; rc == SOFFA_OK && t < k->n_teams; t++) {
            const char *served = NULL;
            for (size_t a = 0; a < n && rc == SOFFA_OK; a++) {
                if (agents[a]->role != SOFFA_ROLE_KAA || strcmp(agents[a]->kommun, k->kommun)
                    || strcmp(agents[a]->team, k->teams[t]))
                    continue;
                if (served)
                    rc = s_fail(why, whylen, "%s: [agent %s] and [agent %s] both serve team %s of %s; a team is one "
                                "agent with one inbox (kaa/%s/%s)", path, served, agents[a]->name, k->teams[t],
                                k->kommun, k->kommun, k->teams[t]);
                served = agents[a]->name;
            }
            if (rc == SOFFA_OK && !served)
                rc = s_fail(why, whylen, "%s: [teams %s] team %s has no agent; add an [agent NAME] with role = kaa, "
                            "kommun = %s, team = %s, or remove it from teams", path, k->kommun, k->teams[t],
                            k->kommun, k->teams[t]);
        }
    }
    /* Every KAA agent of a municipality with teams is one of them; no other names a team. */
    for (size_t a = 0; rc == SOFFA_OK && a < n; a++) {
        const soffa_identity_t *id = agents[a];
        const s_kommun_t *k = s_find(self, id->kommun);
        if (id->team[0] && id->role != SOFFA_ROLE_KAA)
            rc = s_fail(why, whylen, "%s: [agent %s] team is for KAA agents only", path, id->name);
        else if (id->team[0] && !k)
            rc = s_fail(why, whylen, "%s: [agent %s] team = %s, but municipality %s has no [teams %s] section that "
                        "lists it", path, id->name, id->team, id->kommun, id->kommun);
        else if (id->team[0] && s_team_index(k, id->team) < 0)
            rc = s_fail(why, whylen, "%s: [agent %s] team = %s is not one of [teams %s] teams; unknown team", path,
                        id->name, id->team, id->kommun);
        else if (!id->team[0] && k && id->role == SOFFA_ROLE_KAA)
            rc = s_fail(why, whylen, "%s: [agent %s] municipality %s splits its KAA into teams ([teams %s]); give "
                        "the agent team = one of its teams", path, id->name, id->kommun, id->kommun);
    }
    return rc;
}

bool
soffa_teams_split(const soffa_teams_t *self, const char *kommun)
{
    return s_find(self, kommun) != NULL;
}

bool
soffa_teams_has(const soffa_teams_t *self, const char *kommun, const char *team)
{
    const s_kommun_t *k = s_find(self, kommun);
    return k && team && s_team_index(k, team) >= 0;
}

const char *
soffa_teams_route(const soffa_teams_t *self, const char *kommun, const char *school_unit, const char *district)
{
    const s_kommun_t *k = s_find(self, kommun);
    if (!k)
        return "";
    const s_route_t *r = k->rule == SOFFA_TEAMS_RULE_SCHOOL ? k->schools : k->districts;
    size_t n = k->rule == SOFFA_TEAMS_RULE_SCHOOL ? k->n_schools : k->rule == SOFFA_TEAMS_RULE_DISTRICT ? k->n_districts : 0;
    const char *code = k->rule == SOFFA_TEAMS_RULE_SCHOOL ? school_unit : district;
    for (size_t i = 0; code && code[0] && i < n; i++)
        if (!strcmp(r[i].code, code))
            return k->teams[r[i].team];
    return k->teams[k->intake];
}

const char *
soffa_teams_intake(const soffa_teams_t *self, const char *kommun)
{
    const s_kommun_t *k = s_find(self, kommun);
    return k ? k->teams[k->intake] : "";
}

soffa_teams_rule_t
soffa_teams_rule(const soffa_teams_t *self, const char *kommun)
{
    const s_kommun_t *k = s_find(self, kommun);
    return k ? k->rule : SOFFA_TEAMS_RULE_NONE;
}

size_t
soffa_teams_count(const soffa_teams_t *self, const char *kommun)
{
    const s_kommun_t *k = s_find(self, kommun);
    return k ? k->n_teams : 0;
}

const char *
soffa_teams_at(const soffa_teams_t *self, const char *kommun, size_t i)
{
    const s_kommun_t *k = s_find(self, kommun);
    return k && i < k->n_teams ? k->teams[i] : "";
}

bool
soffa_teams_same(const soffa_teams_t *a, const soffa_teams_t *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const s_kommun_t *x = a->k[i], *y = s_find(b, x ? x->kommun : NULL);
        if (!x || !y || x->rule != y->rule || x->n_teams != y->n_teams || x->intake != y->intake
            || x->n_schools != y->n_schools || x->n_districts != y->n_districts
            || memcmp(x->teams, y->teams, sizeof x->teams) || memcmp(x->schools, y->schools, sizeof x->schools)
            || memcmp(x->districts, y->districts, sizeof x->districts))
            return false;
    }
    return true;
}

void
soffa_teams_destroy(soffa_teams_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_teams_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++) {
        free(self->raw[i]);
        free(self->k[i]);
    }
    free(self);
    *self_p = NULL;
}
