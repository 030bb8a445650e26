/*  soffa_teams: a municipality's KAA split into teams or districts (issue 19, item 4).
 *
 *  The broker's configuration may say, for a municipality K, that its KAA
 *  works in teams:
 *
 *    [teams 1480]
 *    teams = hisingen, centrum, intag
 *    rule = school                 # school, district or intake
 *    intake = intag                # what the rule does not place goes here
 *    schools = 12345678:hisingen, 12345679:centrum
 *    districts = 148012:hisingen
 *
 *  Each team is its own agent ([agent NAME] role = kaa, kommun = K,
 *  team = NAME) with its own inbox kaa/K/NAME; the municipality's journal
 *  kaa-journal/K stays one. A municipality without a [teams K] section
 *  works as before: one KAA, inbox kaa/K.
 *
 *  Stages, as soffa_idtable's: soffa_teams_new -> soffa_teams_section
 *  (handed to soffa_cfg_load) -> soffa_teams_finish (checks what was loaded
 *  against the configured agents) -> lookups -> soffa_teams_destroy.
 */
#ifndef SOFFA_TEAMS_H
#define SOFFA_TEAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "soffa_cfg.h"
#include "soffa_err.h"
#include "soffa_policy.h"

#define SOFFA_TEAMS_PER_KOMMUN 16      /* teams of one municipality */
#define SOFFA_TEAMS_ROUTES 256         /* school units or districts mapped, per municipality */

typedef enum {
    SOFFA_TEAMS_RULE_NONE = 0,
    SOFFA_TEAMS_RULE_SCHOOL = 1,       /* by the signal's school unit (skolenhetskod) */
    SOFFA_TEAMS_RULE_DISTRICT = 2,     /* by the district of the registered address, when the signal carries it */
    SOFFA_TEAMS_RULE_INTAKE = 3,       /* everything to the intake team, which distributes */
} soffa_teams_rule_t;

typedef struct soffa_teams soffa_teams_t;

/*  An empty table (no municipality has teams); NULL when out of memory. */
soffa_teams_t *soffa_teams_new(void);

/*  The [teams K] section for soffa_cfg_load. */
soffa_cfg_section_t soffa_teams_section(soffa_teams_t *self);

/*  Checks what was loaded (load_rc: what soffa_cfg_load returned) against
 *  the n configured agents: every team a municipality lists is served by
 *  one KAA agent of that municipality with that team, every KAA agent of a
 *  municipality with teams names one of them, no agent names a team of a
 *  municipality without [teams K], the rule's mappings name listed teams
 *  and each school unit or district once. Returns SOFFA_OK, load_rc, or
 *  SOFFA_ERR_CONFIG with `why` naming the file, section and what to write. */
soffa_err_t soffa_teams_finish(soffa_teams_t *self, const char *config_path, soffa_err_t load_rc,
                               const soffa_identity_t *const *agents, size_t n, char *why, size_t whylen);

/*  True when municipality kommun splits its KAA into teams. */
bool soffa_teams_split(const soffa_teams_t *self, const char *kommun);

/*  True when team is one of kommun's teams. */
bool soffa_teams_has(const soffa_teams_t *self, const char *kommun, const char *team);

/*  The team the rule of kommun gives a signal from school unit school_unit
 *  ("" if none) about a young person registered in district ("" if not
 *  told): the mapped team, else the intake team. "" when kommun has no
 *  teams. Borrowed from the table. */
const char *soffa_teams_route(const soffa_teams_t *self, const char *kommun, const char *school_unit,
                              const char *district);

/*  The intake team of kommun ("" when it has no teams). */
const char *soffa_teams_intake(const soffa_teams_t *self, const char *kommun);

/*  The rule of kommun (SOFFA_TEAMS_RULE_NONE when it has no teams). */
soffa_teams_rule_t soffa_teams_rule(const soffa_teams_t *self, const char *kommun);

/*  The teams of kommun: how many (0 without teams), and the i-th. */
size_t soffa_teams_count(const soffa_teams_t *self, const char *kommun);
const char *soffa_teams_at(const soffa_teams_t *self, const char *kommun, size_t i);

/*  True when a and b hold the same teams and rules. */
bool soffa_teams_same(const soffa_teams_t *a, const soffa_teams_t *b);

/*  Frees the table; NULL-safe. */
void soffa_teams_destroy(soffa_teams_t **self_p);

#endif
