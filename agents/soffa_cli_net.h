/*  soffa_cli_net: a local network for trying soffa out and for the tests:
 *  `soffa up DIR` makes keys, configurations and data for a broker and one
 *  agent of each role (and the web inboxes, soffa_webdemo), starts them in
 *  the background and returns when every agent is connected; `soffa down
 *  DIR` stops them, agents first, each cleanly. DIR/pids lists what runs.
 */
#ifndef SOFFA_CLI_NET_H
#define SOFFA_CLI_NET_H

#include "soffa_cli.h"

/*  Returns 0 when the network is up, 1 when it could not be made or did
 *  not connect within 15 s (what runs is in DIR/pids), 2 for usage. */
int soffa_cli_net_up(soffa_cli_t *c);

/*  Returns 0 when everything listed in DIR/pids was stopped. */
int soffa_cli_net_down(soffa_cli_t *c);

#endif
