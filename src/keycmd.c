/* keycmd: `hookd key create|list|revoke`, the API keys kept in the database
 * (apikeys.h). The key is printed once, by create; the database holds only
 * its SHA-256 and a prefix. A running `hookd serve` on the same database
 * sees a new key at its first use and a revocation within a second. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apikeys.h"
#include "cli.h"
#include "config.h"
#include "flags.h"
#include "store.h"
#include "util.h"

#define DEFAULT_DB "sqlite:./hookd.db"

static const char key_usage[] =
	"usage: hookd key create --scope admin|ingest [--name NAME] [--db URL] [--create]\n"
	"       hookd key list [--db URL]\n"
	"       hookd key revoke KEY_ID [--db URL]\n"
	"\n"
	"API keys kept in the database (only their SHA-256 is stored).\n"
	"  create   makes a key and prints it once; admin keys may call every route,\n"
	"           ingest keys only POST /v1/events. The database must exist (it is\n"
	"           the server's) unless --create is given\n"
	"  list     id, prefix, scope, created, revoked and name of every key\n"
	"  revoke   the key stops working (a running server sees it within 1 s)\n"
	"\n";

struct key_args {
	const char *cmd;
	const char *db;
	const char *scope;
	const char *name;
	const char *id;
	bool create;
};

#define OFF(f) offsetof(struct key_args, f)

/* --db first: list and revoke take only it. */
static const struct flag_spec key_opts[] = {
	{"db", FLAG_STRING, NULL, 0, 0, OFF(db),
	 "the database: sqlite:PATH, a file path or postgres://... (default: $HOOKD_DB, else "
	 DEFAULT_DB ", as hookd serve)", NULL, NULL, "URL", FLAG_SECRET},
	{"scope", FLAG_STRING, NULL, 0, 0, OFF(scope), "create: admin or ingest", NULL, NULL,
	 "admin|ingest", 0},
	{"name", FLAG_STRING, NULL, 0, 0, OFF(name), "create: a label for the key", NULL, NULL,
	 "NAME", 0},
	{"create", FLAG_BOOL, "false", 0, 0, OFF(create),
	 "create: make a new database if there is none at --db (else that is refused)", NULL,
	 NULL, NULL, FLAG_NO_ENV},
};

/* The one positional argument: revoke's key id. */
static int key_positional(void *obj, const char *arg)
{
	struct key_args *a = obj;
	if (strcmp(a->cmd, "revoke") != 0 || a->id != NULL) {
		fprintf(stderr, "hookd key %s: unexpected argument '%s'\n", a->cmd, arg);
		return -1;
	}
	a->id = arg;
	return 0;
}

/* The values given make sense for the command: 0, or 2 after a message. */
static int check_args(const struct key_args *a)
{
	enum apikey_scope scope;
	if (strcmp(a->cmd, "create") == 0) {
		if (a->scope == NULL || apikeys_scope_parse(a->scope, &scope) != 0) {
			fprintf(stderr, "hookd key create: --scope must be admin or ingest\n");
			return 2;
		}
		if (a->name != NULL && !apikeys_name_valid(a->name)) {
			fprintf(stderr, "hookd key create: --name must be at most %d printable "
					"ASCII characters\n", APIKEY_NAME_MAX);
			return 2;
		}
	}
	if (strcmp(a->cmd, "revoke") == 0 && (a->id == NULL || strlen(a->id) >= ID_MAX)) {
		fprintf(stderr, "hookd key revoke: give the id of the key (key_..., see hookd "
				"key list)\n");
		return 2;
	}
	return 0;
}

/* Parses argv (argv[0] is "key"). Returns 0, 1 after --help, 2 on bad usage
 * (after a message). */
static int parse_args(int argc, char **argv, struct key_args *a)
{
	memset(a, 0, sizeof *a);
	a->db = getenv("HOOKD_DB") ? getenv("HOOKD_DB") : DEFAULT_DB;
	struct flag_set top = {.prog = "hookd key", .usage = key_usage, .specs = key_opts, .n = 4};
	if (argc < 2) {
		flags_help(&top, stderr);
		return 2;
	}
	a->cmd = argv[1];
	if (strcmp(a->cmd, "--help") == 0 || strcmp(a->cmd, "-h") == 0 ||
	    strcmp(a->cmd, "help") == 0) {
		flags_help(&top, stdout);
		return 1;
	}
	if (strcmp(a->cmd, "create") != 0 && strcmp(a->cmd, "list") != 0 &&
	    strcmp(a->cmd, "revoke") != 0) {
		fprintf(stderr, "hookd key: unknown command '%s' (create, list or revoke)\n",
			a->cmd);
		return 2;
	}
	char prog[32];
	snprintf(prog, sizeof prog, "hookd key %s", a->cmd);
	struct flag_set fs = {
		.prog = prog,
		.usage = key_usage,
		.specs = key_opts,
		.n = strcmp(a->cmd, "create") == 0 ? 4 : 1,
		.positional = key_positional,
	};
	int rc = flags_parse(&fs, argc, argv, 2, a);
	if (rc != 0)
		return rc == 1 ? 1 : 2;
	return check_args(a);
}

/* Opens the database. A SQLite file must exist unless create --create was
 * given: a key made in a new, empty database (run in the wrong directory, a
 * typo in --db) would only get 401 from the server. A database that is not
 * hookd's, or that cannot be written, is refused as serve refuses it.
 * Returns 0 or 1 after a message. */
static int open_db(const struct key_args *a, struct store **st)
{
	char err[512], shown[1024];
	config_db_display(a->db, shown, sizeof shown);
	bool may_create = strcmp(a->cmd, "create") == 0 && a->create;
	char *path = config_sqlite_path(a->db); /* NULL: not a file (PostgreSQL) */
	if (path != NULL && *path == '\0') {
		fprintf(stderr, "hookd key: --db must be sqlite:PATH, a file path or a PostgreSQL URL\n");
		free(path);
		return 1;
	}
	if (path != NULL && !may_create && access(path, F_OK) != 0) {
		fprintf(stderr, "hookd key %s: no database at %s: give the server's with --db "
				"sqlite:PATH (or $HOOKD_DB)%s\n", a->cmd, path,
			strcmp(a->cmd, "create") == 0 ? ", or add --create to make a new one" : "");
		free(path);
		return 1;
	}
	free(path);
	if (store_check(a->db, err, sizeof err) != STORE_OK) {
		fprintf(stderr, "hookd key %s: refusing the database %s: %s\n", a->cmd, shown, err);
		return 1;
	}
	if (store_open(a->db, st, err, sizeof err) != STORE_OK) {
		fprintf(stderr, "hookd key: cannot open the database %s: %s\n", shown, err);
		return 1;
	}
	return 0;
}

static int key_create(const struct key_args *a, struct store *st)
{
	struct store_api_key k;
	char key[APIKEY_TEXT_LEN + 1];
	int rc = 1;
	memset(&k, 0, sizeof k);
	if (apikeys_generate(key) != 0 || apikeys_hash(key, strlen(key), k.hash) != 0 ||
	    id_new("key", k.id) != 0) {
		fprintf(stderr, "hookd key create: no random bytes or no SHA-256 (OpenSSL)\n");
		goto out;
	}
	apikeys_prefix(key, k.prefix);
	snprintf(k.scope, sizeof k.scope, "%s", a->scope);
	snprintf(k.name, sizeof k.name, "%s", a->name ? a->name : "");
	k.created_at = now_ms();
	if (store_api_key_insert(st, &k) != STORE_OK) {
		fprintf(stderr, "hookd key create: cannot store the key (see the message above)\n");
		goto out;
	}
	printf("id:     %s\nscope:  %s\nname:   %s\nkey:    %s\n", k.id, k.scope, k.name, key);
	fflush(stdout);
	fprintf(stderr, "Store the key now: hookd keeps only its SHA-256 and cannot show it "
			"again.\n");
	rc = 0;
out:
	memset(key, 0, sizeof key);
	return rc;
}

static int key_list(struct store *st)
{
	struct store_api_key *keys = NULL;
	size_t n = 0;
	if (store_api_key_list(st, &keys, &n) != STORE_OK) {
		fprintf(stderr, "hookd key list: cannot read the keys\n");
		return 1;
	}
	printf("%-31s %-12s %-7s %-25s %-25s %s\n", "ID", "PREFIX", "SCOPE", "CREATED", "REVOKED",
	       "NAME");
	for (size_t i = 0; i < n; i++) {
		char created[32], revoked[32] = "-";
		rfc3339_format(keys[i].created_at, created);
		if (keys[i].revoked_at != 0)
			rfc3339_format(keys[i].revoked_at, revoked);
		printf("%-31s %-12s %-7s %-25s %-25s %s\n", keys[i].id, keys[i].prefix,
		       keys[i].scope, created, revoked, keys[i].name);
	}
	free(keys);
	return 0;
}

static int key_revoke(const struct key_args *a, struct store *st)
{
	int rc = store_api_key_revoke(st, a->id, now_ms());
	if (rc == STORE_OK) {
		printf("%s revoked\n", a->id);
		return 0;
	}
	if (rc == STORE_CONFLICT) {
		printf("%s was already revoked\n", a->id);
		return 0;
	}
	if (rc == STORE_NOTFOUND)
		fprintf(stderr, "hookd key revoke: no key %s (see hookd key list)\n", a->id);
	else
		fprintf(stderr, "hookd key revoke: cannot revoke %s\n", a->id);
	return 1;
}

int key_main(int argc, char **argv)
{
	struct key_args a;
	struct store *st = NULL;
	int rc = parse_args(argc, argv, &a);
	if (rc != 0)
		return rc == 1 ? 0 : rc;
	if (open_db(&a, &st) != 0)
		return 1;
	if (strcmp(a.cmd, "create") == 0)
		rc = key_create(&a, st);
	else if (strcmp(a.cmd, "list") == 0)
		rc = key_list(st);
	else
		rc = key_revoke(&a, st);
	store_close(st);
	return rc;
}
