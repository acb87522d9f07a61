/* cli: the commands that manage what the server keeps (campaign, pixel, settings). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_CLI_H
#define SP_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"

/* `spypixel campaign create|list|show|delete ...`: ARGV holds what follows "campaign",
 * settings taken out. Returns the exit code. */
int sp_cli_campaign(sp_config_t *cfg, int argc, char **argv);

/* `spypixel pixel --campaign ID [--recipient ADDR] [--qp]`. Returns the exit code. */
int sp_cli_pixel(sp_config_t *cfg, int argc, char **argv);

/* `spypixel settings [--json|--example]`. Returns the exit code. */
int sp_cli_settings(sp_config_t *cfg, int argc, char **argv);

/* True when a server holds the data folder's journal lock: opens it has answered may not
 * be in the store yet. */
bool sp_cli_server_running(const sp_config_t *cfg);

/* Run as root on a data folder that belongs to another user (the service's), hands the
 * files this command made in it to that user, so that the server can still write them. */
void sp_cli_hand_over(const sp_config_t *cfg);

#endif
