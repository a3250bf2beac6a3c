/* flags: parsing, environment twins, --help and messages from a table of
 * options (flags.h). */
#include "flags.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

void flags_env_name(const char *prefix, const struct flag_spec *s, char *out, size_t outlen)
{
	size_t j = (size_t)snprintf(out, outlen, "%s", prefix ? prefix : "");
	for (const char *p = s->name; *p && j + 1 < outlen; p++)
		out[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	out[j < outlen ? j : outlen - 1] = 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return -1;
}

static int parse_int64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)s[0]))
		return -1;
	*out = v;
	return 0;
}

static bool bounded(const struct flag_spec *s)
{
	return s->min != 0 || s->max != 0;
}

int flags_set(const struct flag_set *fs, void *obj, const struct flag_spec *s, const char *val,
	      const char *source, bool replace)
{
	char *field = (char *)obj + s->offset;
	char why[160] = "";
	int64_t v = 0;
	double d;
	char *end;

	switch (s->type) {
	case FLAG_STRING: {
		if (!*val) {
			snprintf(why, sizeof why, "must not be empty");
			goto bad;
		}
		if (s->check && s->check(val, why, sizeof why) != 0)
			goto bad;
		char *copy = fs->own_strings ? strdup(val) : (char *)val;
		if (!copy) {
			snprintf(why, sizeof why, "out of memory");
			goto bad;
		}
		if (fs->own_strings)
			free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}
	case FLAG_DURATION:
		if (duration_parse_ms(val, &v) != 0) {
			snprintf(why, sizeof why, "expected a duration such as 500ms, 30s, 5m, 2h or 30d");
			goto bad;
		}
		break;
	case FLAG_SIZE:
	case FLAG_INT:
	case FLAG_LONG:
		if (parse_int64(val, &v) != 0) {
			snprintf(why, sizeof why, "expected a whole number");
			goto bad;
		}
		break;
	case FLAG_DOUBLE:
		errno = 0;
		d = strtod(val, &end);
		if (!*val || *end || errno || isnan(d)) {
			snprintf(why, sizeof why, "expected a number");
			goto bad;
		}
		if (bounded(s) && (d < (double)s->min || d > (double)s->max))
			goto range;
		*(double *)field = d;
		return 0;
	case FLAG_BOOL:
	case FLAG_SWITCH:
		if (parse_bool(val, (bool *)field) != 0) {
			snprintf(why, sizeof why, "expected true or false");
			goto bad;
		}
		return 0;
	case FLAG_CUSTOM:
		if (s->parse(obj, val, replace, why, sizeof why) != 0)
			goto bad;
		return 0;
	}
	if (bounded(s) && (v < s->min || v > s->max))
		goto range;
	if (s->type == FLAG_DURATION)
		*(int64_t *)field = v;
	else if (s->type == FLAG_SIZE)
		*(size_t *)field = (size_t)v;
	else if (s->type == FLAG_LONG)
		*(long *)field = (long)v;
	else
		*(int *)field = (int)v;
	return 0;
range:
	snprintf(why, sizeof why, "must be between %lld%s and %lld%s", (long long)s->min,
		 s->type == FLAG_DURATION ? "ms" : "", (long long)s->max,
		 s->type == FLAG_DURATION ? "ms" : "");
bad:
	if (s->bits & FLAG_SECRET)
		fprintf(stderr, "%s: invalid --%s (%s): %s\n", fs->prog, s->name, source, why);
	else
		fprintf(stderr, "%s: invalid --%s '%s' (%s): %s\n", fs->prog, s->name, val, source,
			why);
	return -1;
}

static const struct flag_spec *find(const struct flag_set *fs, const char *name, size_t len)
{
	for (size_t i = 0; i < fs->n; i++) {
		if (strlen(fs->specs[i].name) == len && strncmp(fs->specs[i].name, name, len) == 0)
			return &fs->specs[i];
	}
	return NULL;
}

int flags_parse(const struct flag_set *fs, int argc, char **argv, int first, void *obj)
{
	/* Which source each option last came from, so a repeated flag adds to
	 * the values of earlier flags but replaces the environment's. */
	bool from_flag[64] = {false};
	if (fs->n > sizeof from_flag / sizeof from_flag[0])
		return -1;
	for (size_t i = 0; i < fs->n; i++) {
		const struct flag_spec *s = &fs->specs[i];
		if (s->def && flags_set(fs, obj, s, s->def, "default", true) != 0)
			return -1;
	}
	for (size_t i = 0; fs->env_prefix && i < fs->n; i++) {
		const struct flag_spec *s = &fs->specs[i];
		char env[64];
		flags_env_name(fs->env_prefix, s, env, sizeof env);
		const char *v = (s->bits & FLAG_NO_ENV) ? NULL : getenv(env);
		if (v && flags_set(fs, obj, s, v, env, true) != 0)
			return -1;
	}
	for (int i = first; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			flags_help(fs, stdout);
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0) {
			if (fs->positional) {
				if (fs->positional(obj, arg) != 0)
					return -1;
				continue;
			}
			fprintf(stderr, "%s: unexpected argument '%s' (see %s --help)\n", fs->prog, arg,
				fs->prog);
			return -1;
		}
		const char *name = arg + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct flag_spec *s = find(fs, name, len);
		if (!s) {
			fprintf(stderr, "%s: unknown option '--%.*s' (see %s --help)\n", fs->prog,
				(int)(len > 60 ? 60 : len), name, fs->prog);
			return -1;
		}
		const char *val;
		if (s->type == FLAG_SWITCH && eq) {
			fprintf(stderr, "%s: option --%s takes no value\n", fs->prog, s->name);
			return -1;
		} else if (s->type == FLAG_BOOL || s->type == FLAG_SWITCH) {
			val = eq ? eq + 1 : "true";
		} else if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			fprintf(stderr, "%s: option --%s needs a value\n", fs->prog, s->name);
			return -1;
		}
		size_t k = (size_t)(s - fs->specs);
		if (flags_set(fs, obj, s, val, "flag", !from_flag[k]) != 0)
			return -1;
		from_flag[k] = true;
	}
	return 0;
}

void flags_help(const struct flag_set *fs, FILE *f)
{
	fputs(fs->usage, f);
	for (size_t i = 0; i < fs->n; i++) {
		const struct flag_spec *s = &fs->specs[i];
		bool value = s->type != FLAG_BOOL && s->type != FLAG_SWITCH;
		fprintf(f, "  --%s%s%s\n      %s\n", s->name, value ? " " : "",
			value ? (s->arg ? s->arg : "VALUE") : "", s->help);
		char env[64] = "";
		if (fs->env_prefix && !(s->bits & FLAG_NO_ENV))
			flags_env_name(fs->env_prefix, s, env, sizeof env);
		char range[64] = "";
		const char *unit = s->type == FLAG_DURATION ? "ms" : "";
		if (bounded(s) && s->max != INT64_MAX && s->max != LONG_MAX)
			snprintf(range, sizeof range, "%srange %lld%s..%lld%s", *env || s->def ? ", " : "",
				 (long long)s->min, unit, (long long)s->max, unit);
		if (*env || s->def || *range)
			fprintf(f, "      %s%s%s%s%s%s\n", *env ? "env " : "", env,
				*env && s->def ? ", " : "", s->def ? "default " : "",
				s->def ? s->def : "", range);
	}
	fputs("  --help\n      print this help\n", f);
	if (fs->footer)
		fputs(fs->footer, f);
}

void flags_free(const struct flag_set *fs, void *obj)
{
	for (size_t i = 0; fs->own_strings && i < fs->n; i++) {
		if (fs->specs[i].type == FLAG_STRING) {
			char **p = (char **)((char *)obj + fs->specs[i].offset);
			free(*p);
			*p = NULL;
		}
	}
}
