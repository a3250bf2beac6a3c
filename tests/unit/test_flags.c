/* flags: the table engine (types, bounds, defaults, env twins, switches,
 * positionals, messages) over a small options struct. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"

struct t_opts {
	char *name;
	int64_t wait_ms;
	size_t bytes;
	int count;
	long big;
	double rate;
	bool on;
	bool quiet;
	int custom;
	const char *pos;
};

static int parse_even(void *obj, const char *val, bool replace, char *why, size_t whylen)
{
	struct t_opts *o = obj;
	int v = atoi(val);
	if (v % 2 != 0) {
		snprintf(why, whylen, "expected an even number");
		return -1;
	}
	o->custom = replace ? v : o->custom + v;
	return 0;
}

static int check_no_x(const char *val, char *why, size_t whylen)
{
	if (!strchr(val, 'x'))
		return 0;
	snprintf(why, whylen, "no x allowed");
	return -1;
}

static int take_pos(void *obj, const char *arg)
{
	struct t_opts *o = obj;
	if (o->pos)
		return -1;
	o->pos = arg;
	return 0;
}

#define OFF(f) offsetof(struct t_opts, f)
static const struct flag_spec specs[] = {
	{"name", FLAG_STRING, "anon", 0, 0, OFF(name), "a name", check_no_x, NULL, "NAME", 0},
	{"wait", FLAG_DURATION, "2s", 100, 60000, OFF(wait_ms), "a wait", NULL, NULL, NULL, 0},
	{"bytes", FLAG_SIZE, "10", 0, 1000, OFF(bytes), "bytes", NULL, NULL, NULL, 0},
	{"count", FLAG_INT, "3", 1, 9, OFF(count), "a count", NULL, NULL, NULL, 0},
	{"big", FLAG_LONG, NULL, 0, 0, OFF(big), "unbounded", NULL, NULL, NULL, 0},
	{"rate", FLAG_DOUBLE, "0.5", 0, 1, OFF(rate), "a probability", NULL, NULL, "P", 0},
	{"on", FLAG_BOOL, "false", 0, 0, OFF(on), "a bool", NULL, NULL, NULL, 0},
	{"quiet", FLAG_SWITCH, NULL, 0, 0, OFF(quiet), "a switch", NULL, NULL, NULL, FLAG_NO_ENV},
	{"even", FLAG_CUSTOM, NULL, 0, 0, 0, "even numbers add up", NULL, parse_even, NULL,
	 FLAG_SECRET},
};

static const struct flag_set set = {
	.prog = "hookd test",
	.usage = "usage: hookd test [options]\n\n",
	.footer = "the end\n",
	.specs = specs,
	.n = sizeof specs / sizeof specs[0],
	.env_prefix = "FLAGST_",
	.own_strings = true,
};

static int run(struct t_opts *o, const char *args)
{
	char buf[256], *argv[16] = {"test"};
	int argc = 1;
	snprintf(buf, sizeof buf, "%s", args);
	for (char *t = strtok(buf, " "); t && argc < 16; t = strtok(NULL, " "))
		argv[argc++] = t;
	memset(o, 0, sizeof *o);
	int rc = flags_parse(&set, argc, argv, 1, o);
	if (o->pos)
		o->pos = "set"; /* argv points into buf */
	flags_free(&set, o);
	return rc;
}

struct good_case {
	const char *args;
	size_t off;
	enum { I64, SZ, INT, LNG, DBL, BOOL } kind;
	double want;
};

Test(flags, good_inputs)
{
	static const struct good_case cases[] = {
		{"", OFF(wait_ms), I64, 2000},
		{"--wait 500ms", OFF(wait_ms), I64, 500},
		{"--wait=1m", OFF(wait_ms), I64, 60000},
		{"--wait 100ms", OFF(wait_ms), I64, 100},
		{"", OFF(bytes), SZ, 10},
		{"--bytes 0", OFF(bytes), SZ, 0},
		{"--bytes=1000", OFF(bytes), SZ, 1000},
		{"", OFF(count), INT, 3},
		{"--count 9", OFF(count), INT, 9},
		{"--count 1 --count 7", OFF(count), INT, 7},
		{"--big 9223372036854775807", OFF(big), LNG, 9223372036854775807.0},
		{"", OFF(rate), DBL, 0.5},
		{"--rate 0", OFF(rate), DBL, 0},
		{"--rate=1", OFF(rate), DBL, 1},
		{"--rate 0.25", OFF(rate), DBL, 0.25},
		{"", OFF(on), BOOL, 0},
		{"--on", OFF(on), BOOL, 1},
		{"--on=yes", OFF(on), BOOL, 1},
		{"--on --on=off", OFF(on), BOOL, 0},
		{"--quiet", OFF(quiet), BOOL, 1},
		{"--even 2 --even 4", OFF(custom), INT, 6},
	};
	unsetenv("FLAGST_WAIT");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct t_opts o;
		const struct good_case *c = &cases[i];
		cr_assert_eq(run(&o, c->args), 0, "%s", c->args);
		const char *f = (const char *)&o + c->off;
		double got = c->kind == I64    ? (double)*(const int64_t *)f
			     : c->kind == SZ   ? (double)*(const size_t *)f
			     : c->kind == INT  ? *(const int *)f
			     : c->kind == LNG  ? (double)*(const long *)f
			     : c->kind == DBL  ? *(const double *)f
					       : *(const bool *)f;
		cr_assert_eq(got, c->want, "%s: got %g, want %g", c->args, got, c->want);
	}
}

Test(flags, bad_inputs_fail)
{
	static const char *cases[] = {
		"--wait 99ms",  "--wait 61s",   "--wait soon", "--wait=",     "--bytes 1001",
		"--bytes -1",   "--bytes 1k",   "--count 0",   "--count 10",  "--count 3x",
		"--count",      "--rate 1.5",   "--rate -0.1", "--rate nan",  "--rate x",
		"--on=maybe",   "--quiet=1",    "--name",      "--name=",     "--name xyz",
		"--even 3",     "--nope",       "--nope=1",    "stray",       "-x",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct t_opts o;
		cr_assert_eq(run(&o, cases[i]), -1, "%s", cases[i]);
	}
}

Test(flags, env_twins_and_flags_win)
{
	struct t_opts o;
	setenv("FLAGST_COUNT", "5", 1);
	setenv("FLAGST_QUIET", "true", 1); /* FLAG_NO_ENV: ignored */
	setenv("FLAGST_EVEN", "8", 1);
	memset(&o, 0, sizeof o);
	char *a1[] = {"test"};
	cr_assert_eq(flags_parse(&set, 1, a1, 1, &o), 0);
	cr_assert_eq(o.count, 5);
	cr_assert(!o.quiet);
	cr_assert_eq(o.custom, 8);
	cr_assert_str_eq(o.name, "anon");
	flags_free(&set, &o);
	cr_assert_null(o.name);

	/* A flag wins; the first flag of a repeatable option replaces the env's. */
	char *a2[] = {"test", "--count", "2", "--even", "2", "--even", "4", "--name", "bob"};
	memset(&o, 0, sizeof o);
	cr_assert_eq(flags_parse(&set, 9, a2, 1, &o), 0);
	cr_assert_eq(o.count, 2);
	cr_assert_eq(o.custom, 6);
	cr_assert_str_eq(o.name, "bob");
	flags_free(&set, &o);

	setenv("FLAGST_COUNT", "12", 1);
	memset(&o, 0, sizeof o);
	cr_assert_eq(flags_parse(&set, 1, a1, 1, &o), -1, "a bad env value fails");
	flags_free(&set, &o);
	unsetenv("FLAGST_COUNT");
	unsetenv("FLAGST_QUIET");
	unsetenv("FLAGST_EVEN");
}

Test(flags, positional_hook)
{
	struct flag_set s = set;
	s.positional = take_pos;
	struct t_opts o;
	memset(&o, 0, sizeof o);
	char *a[] = {"test", "one", "--count", "4"};
	cr_assert_eq(flags_parse(&s, 4, a, 1, &o), 0);
	cr_assert_str_eq(o.pos, "one");
	cr_assert_eq(o.count, 4);
	flags_free(&s, &o);
	char *b[] = {"test", "one", "two"};
	memset(&o, 0, sizeof o);
	cr_assert_eq(flags_parse(&s, 3, b, 1, &o), -1);
	flags_free(&s, &o);
}

Test(flags, messages_name_program_flag_and_source, .init = cr_redirect_stderr)
{
	struct t_opts o;
	cr_assert_eq(run(&o, "--count 12"), -1);
	cr_assert_eq(run(&o, "--even 3"), -1);
	cr_assert_eq(run(&o, "--nope"), -1);
	cr_assert_eq(run(&o, "--count"), -1);
	cr_assert_eq(run(&o, "--quiet=1"), -1);
	cr_assert_eq(run(&o, "--wait 1ms"), -1);
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"hookd test: invalid --count '12' (flag): must be between 1 and 9\n"
		"hookd test: invalid --even (flag): expected an even number\n"
		"hookd test: unknown option '--nope' (see hookd test --help)\n"
		"hookd test: option --count needs a value\n"
		"hookd test: option --quiet takes no value\n"
		"hookd test: invalid --wait '1ms' (flag): must be between 100ms and 60000ms\n");
}

Test(flags, help_from_the_table, .init = cr_redirect_stdout)
{
	struct t_opts o;
	cr_assert_eq(run(&o, "--count 4 --help"), 1);
	fflush(stdout);
	FILE *f = cr_get_redirected_stdout();
	char out[4096];
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = 0;
	cr_assert(strncmp(out, "usage: hookd test [options]\n", 28) == 0, "%s", out);
	cr_assert(strstr(out, "  --name NAME\n      a name\n      env FLAGST_NAME, default anon\n"),
		  "%s", out);
	cr_assert(strstr(out, "  --quiet\n      a switch\n  --even VALUE\n"), "%s", out);
	cr_assert(strstr(out, "  --help\n      print this help\nthe end\n"), "%s", out);
}
