/* admin: the command line's user and token commands (dashboard users, API tokens). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_ADMIN_H
#define SP_ADMIN_H

#include "config.h"

#define SP_ADMIN_USER_HELP                                                                         \
    "usage: spypixel user add NAME --password-stdin [--data DIR]\n"                                \
    "       spypixel user passwd NAME --password-stdin [--data DIR]\n"                             \
    "       spypixel user delete NAME [--data DIR]\n"                                              \
    "       spypixel user list [--json] [--data DIR]\n"                                            \
    "Dashboard users. NAME is 1-128 letters, digits or - _ @ + . and the password (at least\n"     \
    "8 characters) is read from standard input and stored as an argon2id hash.\n"                  \
    "  add     creates the user, or sets a new password when it exists\n"                          \
    "  passwd  sets a new password of an existing user\n"                                          \
    "  delete  deletes the user\n"                                                                 \
    "  list    lists the users: name, created, active sessions, API tokens it owns; with\n"        \
    "          --json a JSON list of {name, created_at, sessions, tokens}. On a terminal a\n"      \
    "          table, else one tab-separated line per user. Never a password or its hash.\n"       \
    "A new password and a deletion end every session of the user and every API token it\n"         \
    "owns (token create --user), also on a running server.\n"

#define SP_ADMIN_TOKEN_HELP                                                                        \
    "usage: spypixel token create NAME [--user USER] [--data DIR]\n"                               \
    "       spypixel token list [--json] [--data DIR]\n"                                           \
    "       spypixel token revoke ID|NAME [--data DIR]\n"                                          \
    "API tokens for 'Authorization: Bearer TOKEN'; only a hash of each is stored.\n"               \
    "  create  prints a new token. NAME (1-128 letters, digits or - _ @ + .) says what it is\n"    \
    "          for. With --user, the token belongs to USER and ends when USER's password\n"        \
    "          changes or USER is deleted; without, only 'token revoke' ends it.\n"                \
    "  list    lists the tokens: ID, name, user, created; with --json a JSON list of\n"            \
    "          {id, name, user, created_at}. On a terminal a table, else one tab-separated\n"      \
    "          line per token. Never a token: the ID is the first 12 hex digits of its hash.\n"    \
    "  revoke  ends the token whose ID (as 'token list' shows it) is given, or every token\n"      \
    "          of that NAME; fails when none matches.\n"

/* spypixel user ARGV[0..ARGC) (the subcommand first) and spypixel token ...: the exit status
 * (0, 1 on a failure, 2 on a usage error). Messages go to standard error, listings and new
 * tokens to standard output. */
int sp_admin_user(const sp_config_t *cfg, int argc, char **argv);
int sp_admin_token(const sp_config_t *cfg, int argc, char **argv);

#endif
