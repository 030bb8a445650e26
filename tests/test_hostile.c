/*  The hostile client: a real CURVE client holding one configured agent's
 *  key (or a copy of a backup, or a local account) against the real broker
 *  process, trying what an attacker would. One test per attack; each names
 *  the item of the threat model it checks (README, "Threat model"). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_keys.h"
#include "soffa_store.h"
#include "soffa_time.h"
#include "soffa_uuid.h"
#include "testkit.h"

static char PUPIL[13];    /* 18 years old, registered in Tjörn */
static char CHILD[13];    /* 16 years old */

static void
setup(void)
{
    soffa_date_t t = soffa_date_today();
    tk_pnr(t.year - 18, 3, 14, 271, 0, PUPIL);
    tk_pnr(t.year - 16, 5, 2, 384, 0, CHILD);
}

TestSuite(hostile, .init = setup, .timeout = 120);
