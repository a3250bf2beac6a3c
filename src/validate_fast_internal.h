/* validate_fast_internal: what validate.c shares with validate_fast.c, and
 * no one else: how jansson prints a real, which validate_json_text relies on
 * and the fast path reproduces. Not part of the validate API (validate.h). */
#ifndef HOOKD_VALIDATE_FAST_INTERNAL_H
#define HOOKD_VALIDATE_FAST_INTERNAL_H

#include <stddef.h>

/* Fewest %.Ng digits (15..17) with which v reads back exactly: the precision
 * validate_json_text prints reals with, which the fast path must match
 * byte for byte. Never fails. */
int validate_real_digits(double v);

#define VALIDATE_REAL_OUT 32 /* longest printed real ("%.17g" + ".0") */

/* v as jansson's dtostr prints it with precision prec: "%.*g", ".0" added
 * when it reads as an integer, the exponent without '+' or leading zeros.
 * Writes out (not NUL-terminated) and returns its length, or 0 if it would
 * not fit. */
size_t validate_real_text(double v, int prec, char out[VALIDATE_REAL_OUT]);

#endif
