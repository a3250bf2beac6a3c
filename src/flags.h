/* flags: a command's options as one table (name, type, default, bounds,
 * environment twin, help) from which argv parsing, environment variables,
 * --help and the bad-value messages come. Used by serve, mock, verify, key. */
#ifndef HOOKD_FLAGS_H
#define HOOKD_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum flag_type {
	FLAG_STRING,   /* char *; not empty; copied if the set owns strings */
	FLAG_DURATION, /* int64_t ms from "500ms", "30s", "2h", "30d" (bare: seconds) */
	FLAG_SIZE,     /* size_t, a whole number */
	FLAG_INT,      /* int, a whole number */
	FLAG_LONG,     /* long, a whole number */
	FLAG_DOUBLE,   /* double, a decimal number */
	FLAG_BOOL,     /* bool; --X alone is true, --X=false and env values allowed */
	FLAG_SWITCH,   /* bool set by --X alone; a value is an error */
	FLAG_CUSTOM,   /* the spec's parse hook does it all */
};

/* Flag bits of a spec. */
#define FLAG_SECRET 1u /* never echo the value in a message */
#define FLAG_NO_ENV 2u /* no environment twin */

struct flag_spec {
	const char *name;   /* without "--"; env twin is prefix + upper-case, '-' -> '_' */
	enum flag_type type;
	const char *def;    /* default as text, parsed like user input; NULL = leave as is */
	int64_t min, max;   /* bounds for DURATION (ms), SIZE, INT, LONG, DOUBLE; 0,0 = none */
	size_t offset;      /* of the field in the options struct */
	const char *help;
	/* Extra check of a STRING beyond "not empty" (NULL: none); fills why. */
	int (*check)(const char *val, char *why, size_t whylen);
	/* CUSTOM: parses val into obj; replace is true for the first value from a
	 * new source (so a repeatable flag replaces what the environment gave).
	 * Returns 0, or -1 with why filled. */
	int (*parse)(void *obj, const char *val, bool replace, char *why, size_t whylen);
	const char *arg;    /* name of the value in --help ("FILE"); NULL = VALUE */
	unsigned bits;
};

struct flag_set {
	const char *prog;       /* "hookd serve": starts every message */
	const char *usage;      /* printed before the options by --help */
	const char *footer;     /* printed after them (NULL: nothing) */
	const struct flag_spec *specs;
	size_t n;
	const char *env_prefix; /* "HOOKD_", or NULL for no environment twins */
	bool own_strings;       /* strdup STRING values (free with flags_free) */
	/* Called for an argument not starting with "--"; NULL: an error. Returns 0,
	 * or -1 after printing a message. */
	int (*positional)(void *obj, const char *arg);
};

/* Sets one option of obj from text; source ("flag", "default", the env
 * name) appears in the message. Returns 0, or -1 after printing
 * "PROG: invalid --NAME 'VALUE' (SOURCE): why" to stderr. */
int flags_set(const struct flag_set *fs, void *obj, const struct flag_spec *s, const char *val,
	      const char *source, bool replace);

/* Applies defaults, then the environment twins, then argv[first..] (a flag
 * wins over its variable). Returns 0; 1 if --help/-h was printed to stdout;
 * -1 after a message on stderr (bad value, unknown option, missing value,
 * stray argument). Owned strings are the caller's to free with flags_free,
 * also after -1. */
int flags_parse(const struct flag_set *fs, int argc, char **argv, int first, void *obj);

/* Prints fs->usage, one entry per option and fs->footer to f. */
void flags_help(const struct flag_set *fs, FILE *f);

/* Frees the STRING values of obj if fs owns them, and sets them to NULL. */
void flags_free(const struct flag_set *fs, void *obj);

/* The environment twin of s under prefix into out. */
void flags_env_name(const char *prefix, const struct flag_spec *s, char *out, size_t outlen);

#endif
