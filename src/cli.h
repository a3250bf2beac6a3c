/* cli: the subcommands main() dispatches to. Each takes the arguments after
 * the subcommand name (argv[0] is the subcommand) and returns the process
 * exit code: 0 success, 1 failure (verify: not verified), 2 usage error. */
#ifndef HOOKD_CLI_H
#define HOOKD_CLI_H

int serve_main(int argc, char **argv);
int mock_main(int argc, char **argv);
int verify_main(int argc, char **argv);
int key_main(int argc, char **argv);
int backup_main(int argc, char **argv);

#endif
