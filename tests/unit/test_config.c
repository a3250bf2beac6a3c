/* config: flag/env parsing, defaults, bounds and the retry schedule. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static int parse(struct serve_config *cfg, int argc, char **argv)
{
	return config_parse(argc, argv, cfg);
}

Test(config, defaults)
{
	struct serve_config cfg;
	char *argv[] = {"serve"};
	unsetenv("HOOKD_LISTEN");
	cr_assert_eq(parse(&cfg, 1, argv), 0);
	cr_assert_str_eq(cfg.listen, "127.0.0.1:8080");
	cr_assert_str_eq(cfg.db, "sqlite:./hookd.db");
	cr_assert_eq(cfg.n_api_keys, 0);
	cr_assert_eq(cfg.schedule_len, 5);
	int64_t want[] = {0, 60000, 300000, 1800000, 7200000};
	for (int i = 0; i < 5; i++)
		cr_assert_eq(cfg.schedule_ms[i], want[i]);
	cr_assert_eq(cfg.timeout_ms, 30000);
	cr_assert_eq(cfg.dlq_retention_ms, 30LL * 24 * 3600 * 1000);
	cr_assert_eq(cfg.retention_ms, 30LL * 24 * 3600 * 1000);
	cr_assert_eq(cfg.max_body, 1048576);
	cr_assert_eq(cfg.senders, 2);
	cr_assert(!cfg.allow_http);
	config_free(&cfg);
}

Test(config, flags_and_env_twins)
{
	struct serve_config cfg;
	setenv("HOOKD_LISTEN", "0.0.0.0:9999", 1);
	setenv("HOOKD_API_KEY", "envkey-one,envkey-two", 1);
	setenv("HOOKD_ALLOW_HTTP", "yes", 1);
	char *argv[] = {"serve", "--timeout", "5s", "--retry-schedule=0,1s,250ms"};
	cr_assert_eq(parse(&cfg, 4, argv), 0);
	cr_assert_str_eq(cfg.listen, "0.0.0.0:9999");
	cr_assert_eq(cfg.n_api_keys, 2);
	cr_assert_str_eq(cfg.api_keys[1], "envkey-two");
	cr_assert(cfg.allow_http);
	cr_assert_eq(cfg.timeout_ms, 5000);
	cr_assert_eq(cfg.schedule_len, 3);
	cr_assert_eq(cfg.schedule_ms[2], 250);
	config_free(&cfg);

	setenv("HOOKD_SENDERS", "3", 1);
	char *argv_s[] = {"serve"};
	cr_assert_eq(parse(&cfg, 1, argv_s), 0);
	cr_assert_eq(cfg.senders, 3, "HOOKD_SENDERS");
	config_free(&cfg);
	char *argv_s2[] = {"serve", "--senders", "1"};
	cr_assert_eq(parse(&cfg, 3, argv_s2), 0);
	cr_assert_eq(cfg.senders, 1, "the flag wins");
	config_free(&cfg);
	unsetenv("HOOKD_SENDERS");

	/* A flag wins over its environment twin; --api-key flags replace env keys. */
	char *argv2[] = {"serve", "--listen", "127.0.0.1:0", "--api-key", "flagkey-1", "--api-key",
			 "flagkey-2"};
	cr_assert_eq(parse(&cfg, 7, argv2), 0);
	cr_assert_str_eq(cfg.listen, "127.0.0.1:0");
	cr_assert_eq(cfg.n_api_keys, 2);
	cr_assert_str_eq(cfg.api_keys[0], "flagkey-1");
	config_free(&cfg);
	unsetenv("HOOKD_LISTEN");
	unsetenv("HOOKD_API_KEY");
	unsetenv("HOOKD_ALLOW_HTTP");
}

struct bad_case {
	char *flag;
	char *value;
};

Test(config, bad_values_are_errors)
{
	static struct bad_case cases[] = {
		{"--timeout", "abc"},        {"--timeout", "10m"},      {"--retry-schedule", "1x"},
		{"--retry-schedule", ""},    {"--retry-schedule", "0,,1s"}, {"--listen", "nonsense"},
		{"--listen", "1.2.3.4:70000"}, {"--max-body", "-1"},    {"--max-body", "12k"},
		{"--max-in-flight", "0"},    {"--api-key", "short"},    {"--db", "mysql://x/y"},
		{"--log-level", "loud"},     {"--dlq-retention", "999ms"},  {"--no-such-flag", "1"},
		{"--senders", "0"},          {"--senders", "65"},       {"--senders", "two"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct serve_config cfg;
		char *argv[] = {"serve", cases[i].flag, cases[i].value};
		cr_expect_eq(parse(&cfg, 3, argv), -1, "%s %s should be refused", cases[i].flag,
			     cases[i].value);
	}
	struct serve_config cfg;
	char *missing[] = {"serve", "--timeout"};
	cr_expect_eq(parse(&cfg, 2, missing), -1);
	setenv("HOOKD_TIMEOUT", "soon", 1);
	char *none[] = {"serve"};
	cr_expect_eq(parse(&cfg, 1, none), -1, "a bad environment value is an error too");
	unsetenv("HOOKD_TIMEOUT");
}

/* --retention: a duration from 1s, or off / 0; anything else is refused. */
Test(config, retention_values)
{
	static const struct {
		const char *value;
		int rc;
		int64_t ms;
	} cases[] = {
		{"2s", 0, 2000},   {"30d", 0, 30LL * 24 * 3600 * 1000}, {"off", 0, 0},
		{"0", 0, 0},       {"0s", 0, 0},                         {"90", 0, 90000},
		{"999ms", -1, 0},  {"forever", -1, 0},                   {"3651d", -1, 0},
		{"-1s", -1, 0},    {"", -1, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct serve_config cfg;
		char *argv[] = {"serve", "--retention", (char *)cases[i].value};
		int rc = parse(&cfg, 3, argv);
		cr_expect_eq(rc, cases[i].rc, "--retention '%s'", cases[i].value);
		if (rc == 0) {
			cr_expect_eq(cfg.retention_ms, cases[i].ms, "--retention '%s'",
				     cases[i].value);
			config_free(&cfg);
		}
	}
}

Test(config, schedule_parser)
{
	int64_t out[CONFIG_MAX_SCHEDULE];
	cr_assert_eq(config_parse_schedule("0,1m,5m,30m,2h", out, CONFIG_MAX_SCHEDULE), 5);
	cr_assert_eq(out[4], 7200000);
	cr_assert_eq(config_parse_schedule("10", out, CONFIG_MAX_SCHEDULE), 1);
	cr_assert_eq(out[0], 10000);
	cr_assert_eq(config_parse_schedule("1s,2s,3s", out, 2), -1, "longer than max");
	cr_assert_eq(config_parse_schedule("31d", out, CONFIG_MAX_SCHEDULE), -1);
	cr_assert_eq(config_parse_schedule("1s,", out, CONFIG_MAX_SCHEDULE), -1);
}

Test(config, sqlite_path)
{
	char *p = config_sqlite_path("sqlite:/tmp/x.db");
	cr_assert_str_eq(p, "/tmp/x.db");
	free(p);
	p = config_sqlite_path("data/h.db");
	cr_assert_str_eq(p, "data/h.db");
	free(p);
	cr_assert_null(config_sqlite_path("postgres://db/hookd"));
}

/* --db takes PostgreSQL URLs as libpq parses them (issue 14); a bad one is
 * refused naming --db, and its password never reaches the message. */
Test(config, postgres_urls, .init = cr_redirect_stderr)
{
	static const char *good[] = {
		"postgres://hookd@db.example.com:5432/hookd",
		"postgresql://hookd:pw@10.0.0.5/hookd?sslmode=require",
		"postgresql:///hookd?host=/var/run/postgresql",
		"postgres://", /* everything from libpq's PG* variables */
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct serve_config cfg;
		char *argv[] = {"serve", "--db", (char *)good[i]};
		cr_assert_eq(parse(&cfg, 3, argv), 0, "%s", good[i]);
		cr_assert_str_eq(cfg.db, good[i]);
		config_free(&cfg);
	}
	struct serve_config cfg;
	char *bad[] = {"serve", "--db", "postgres://u:s3cr3t-pw@h/db?no_such_param=1"};
	cr_assert_eq(parse(&cfg, 3, bad), -1);
	char *bad2[] = {"serve", "--db", "postgres://u@h/db?no_such_param=1"};
	cr_assert_eq(parse(&cfg, 3, bad2), -1);
	fflush(stderr);
	char text[4096] = "";
	size_t n = fread(text, 1, sizeof text - 1, cr_get_redirected_stderr());
	text[n] = '\0';
	cr_assert(strstr(text, "invalid --db"), "%s", text);
	cr_assert(strstr(text, "'postgres://u:***@h/db?no_such_param=1': not a valid PostgreSQL URL"),
		  "%s", text);
	cr_assert(strstr(text, "no_such_param"), "libpq's reason when no password: %s", text);
	cr_assert_null(strstr(text, "s3cr3t"), "%s", text);
}

Test(config, db_display_masks_passwords)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"sqlite:/var/lib/hookd/a:b@c.db", "sqlite:/var/lib/hookd/a:b@c.db"},
		{"postgres://hookd:pw@h:5432/db", "postgres://hookd:***@h:5432/db"},
		{"postgresql://hookd@h/db", "postgresql://hookd@h/db"},
		{"postgres://u:p@ss@h/db", "postgres://u:***@h/db"},
		{"postgres://h/db?user=u&password=pw&sslmode=require",
		 "postgres://h/db?user=u&password=***&sslmode=require"},
		{"postgres://h/db?password=pw", "postgres://h/db?password=***"},
		{"postgres://h/db?xpassword=pw", "postgres://h/db?xpassword=pw"},
		{"postgres://", "postgres://"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[128];
		config_db_display(cases[i].in, out, sizeof out);
		cr_expect_str_eq(out, cases[i].out, "%s", cases[i].in);
	}
	char small[16];
	config_db_display("postgres://u:password@h/db", small, sizeof small);
	cr_assert_eq(strlen(small), sizeof small - 1, "cut, NUL-terminated");
	cr_assert_null(strstr(small, "password"));
}

/* Issue 14: --node-id and --node-lease (docs/scaling.md). */
Test(config, node_settings, .init = cr_redirect_stderr)
{
	struct serve_config cfg;
	unsetenv("HOOKD_NODE_ID");
	unsetenv("HOOKD_NODE_LEASE");
	char *dflt[] = {"serve"};
	cr_assert_eq(parse(&cfg, 1, dflt), 0);
	cr_assert_eq(strlen(cfg.node_id), 16, "a random 16-hex id: %s", cfg.node_id);
	cr_assert_eq(strspn(cfg.node_id, "0123456789abcdef"), 16);
	cr_assert_eq(cfg.node_lease_ms, 10000);
	config_free(&cfg);

	char *pg[] = {"serve", "--db", "postgres://h/db", "--node-id", "web-1.a_b",
		      "--node-lease", "3s"};
	cr_assert_eq(parse(&cfg, 7, pg), 0);
	cr_assert_str_eq(cfg.node_id, "web-1.a_b");
	cr_assert_eq(cfg.node_lease_ms, 3000);
	config_free(&cfg);

	const char *bad[][2] = {
		{"--node-id", ""}, {"--node-id", "has space"}, {"--node-id", "a/b"},
		{"--node-id", "0123456789012345678901234567890123456789012345678901234567890123x"},
		{"--node-lease", "1s"}, {"--node-lease", "11m"}, {"--node-lease", "soon"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *argv[] = {"serve", "--db", "postgres://h/db", (char *)bad[i][0],
				(char *)bad[i][1]};
		cr_expect_eq(parse(&cfg, 5, argv), -1, "%s '%s' accepted", bad[i][0], bad[i][1]);
	}
	/* SQLite runs one node: --node-lease there is a usage error naming it. */
	char *lite[] = {"serve", "--db", "sqlite:x.db", "--node-lease", "5s"};
	cr_assert_eq(parse(&cfg, 5, lite), -1);
	fflush(stderr);
	char out[4096] = "";
	size_t got = fread(out, 1, sizeof out - 1, cr_get_redirected_stderr());
	out[got] = '\0';
	cr_assert_not_null(strstr(out, "hookd serve: --node-lease needs a PostgreSQL --db"), "%s",
			   out);
}

/* --node-id: a name of 1..64 of [A-Za-z0-9._-] kept as given (flag or
 * HOOKD_NODE_ID); without one, a random 16-hex id, another each start. */
Test(config, node_id, .init = cr_redirect_stderr)
{
	struct serve_config cfg;
	char *given[] = {"serve", "--node-id", "eu-1.b_2"};
	cr_assert_eq(parse(&cfg, 3, given), 0);
	cr_assert_str_eq(cfg.node_id, "eu-1.b_2");
	config_free(&cfg);
	char longest[66];
	memset(longest, 'n', 64);
	longest[64] = '\0';
	char *max[] = {"serve", "--node-id", longest};
	cr_assert_eq(parse(&cfg, 3, max), 0);
	cr_assert_str_eq(cfg.node_id, longest);
	config_free(&cfg);
	setenv("HOOKD_NODE_ID", "from-env", 1);
	char *none[] = {"serve"};
	cr_assert_eq(parse(&cfg, 1, none), 0);
	cr_assert_str_eq(cfg.node_id, "from-env");
	config_free(&cfg);
	unsetenv("HOOKD_NODE_ID");

	char first[17];
	cr_assert_eq(parse(&cfg, 1, none), 0);
	cr_assert_eq(strlen(cfg.node_id), 16, "%s", cfg.node_id);
	cr_assert_eq(strspn(cfg.node_id, "0123456789abcdef"), 16, "%s", cfg.node_id);
	memcpy(first, cfg.node_id, sizeof first);
	config_free(&cfg);
	cr_assert_eq(parse(&cfg, 1, none), 0);
	cr_assert_str_neq(cfg.node_id, first, "a new random id each start");
	config_free(&cfg);

	longest[64] = 'n';
	longest[65] = '\0';
	const char *bad[] = {"", "a b", "node/1", "nödé", "a:b", longest};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *argv[] = {"serve", "--node-id", (char *)bad[i]};
		cr_expect_eq(parse(&cfg, 3, argv), -1, "--node-id '%s' should be refused", bad[i]);
	}
}
