/* hookd: a webhook delivery server. main() only picks the subcommand. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/opensslv.h>
#include <sqlite3.h>

#include "cli.h"

static void usage(FILE *f)
{
	fputs("usage: hookd <command> [options]\n"
	      "\n"
	      "commands:\n"
	      "  serve     run the API and the delivery engine (hookd serve --help)\n"
	      "  mock      run a receiver that verifies and records deliveries (hookd mock --help)\n"
	      "  verify    verify a captured delivery against a secret (hookd verify --help)\n"
	      "  key       create, list and revoke API keys kept in the database (hookd key --help)\n"
	      "  backup    copy the database while serve runs on it (hookd backup --help)\n",
	      f);
	client_usage(f);
	fputs("  version   print the version and the libraries it was built with\n", f);
}

static int version_main(void)
{
	printf("hookd %s\n", HOOKD_VERSION);
	printf("libcurl %s, libmicrohttpd %s, jansson %s, %s, sqlite %s\n", curl_version_info(CURLVERSION_NOW)->version,
	       MHD_get_version(), JANSSON_VERSION, OPENSSL_VERSION_TEXT, sqlite3_libversion());
	int pq = PQlibVersion(); /* e.g. 150018 for 15.18 */
	printf("libpq %d.%d\n", pq / 10000, pq % 10000);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "serve") == 0)
		return serve_main(argc - 1, argv + 1);
	if (strcmp(cmd, "mock") == 0)
		return mock_main(argc - 1, argv + 1);
	if (strcmp(cmd, "verify") == 0)
		return verify_main(argc - 1, argv + 1);
	if (strcmp(cmd, "key") == 0)
		return key_main(argc - 1, argv + 1);
	if (strcmp(cmd, "backup") == 0)
		return backup_main(argc - 1, argv + 1);
	if (strcmp(cmd, "endpoint") == 0 || strcmp(cmd, "event") == 0 ||
	    strcmp(cmd, "delivery") == 0 || strcmp(cmd, "dlq") == 0 || strcmp(cmd, "tail") == 0)
		return client_main(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
		return version_main();
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "hookd: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
