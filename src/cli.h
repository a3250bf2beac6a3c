/* cli: the subcommands main() dispatches to. Each takes the arguments after
 * the subcommand name (argv[0] is the subcommand) and returns the process
 * exit code: 0 success, 1 failure (verify: not verified), 2 usage error. */
#ifndef HOOKD_CLI_H
#define HOOKD_CLI_H

#include <stdio.h>

int serve_main(int argc, char **argv);
int mock_main(int argc, char **argv);
int verify_main(int argc, char **argv);
int key_main(int argc, char **argv);
int backup_main(int argc, char **argv);
/* The API client: argv[0] is the noun (endpoint, event, delivery, dlq,
 * tail); exit 0 done, 1 API or connection error, 2 usage (client_args.c). */
int client_main(int argc, char **argv);
/* The client's lines of `hookd --help`. */
void client_usage(FILE *f);

#endif
