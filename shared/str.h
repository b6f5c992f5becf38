/*
 * str.h: bounded string helpers, range-checked number parsing, host:port, and a growable buffer.
 * The project bans strcpy, sprintf, strcat, gets and atoi; these are what to use instead.
 */
#ifndef SHARED_STR_H
#define SHARED_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

/* str_copy: copy src into dst[cap], always NUL-terminated; false if it had to truncate. */
bool str_copy(char *dst, size_t cap, const char *src);

/* str_printf: snprintf into dst[cap]; false if the result was truncated (or on encoding error). */
bool str_printf(char *dst, size_t cap, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* str_dup_printf: format into a new heap string; the caller frees it. NULL only on OOM. */
char *str_dup_printf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* str_quote: untrusted input made safe for an error message: printable ASCII kept, anything else
 * (and \\ and ") as \\xNN, input longer than STR_QUOTE_MAX_INPUT shortened with "...". Returns out,
 * so it can be used inline as a printf argument. */
#define STR_QUOTE_MAX_INPUT 128
#define STR_QUOTE_SIZE      (STR_QUOTE_MAX_INPUT * 4 + 4)
const char *str_quote(const char *s, char out[STR_QUOTE_SIZE]);

/* str_has_prefix / str_has_suffix */
bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);

/* str_hex_digit: the value of one hex digit of either case, -1 when c is not one. */
int str_hex_digit(int c);

/* parse_u64: the whole of s (decimal digits only, no sign, no spaces) in [min, max]. */
bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) MUST_CHECK;

/* parse_i64: the whole of s (optional leading '-', decimal digits) in [min, max]. */
bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) MUST_CHECK;

#define HOST_MAX 256

typedef struct HostPort {
    char host[HOST_MAX];
    uint16_t port; /* 0 = pick any free port (servers) */
} HostPort;

/* host_port_parse: "host:port", "[::1]:port" or ":port" (host 0.0.0.0). err 400 on bad input. */
bool host_port_parse(const char *s, HostPort *out, Err *err) MUST_CHECK;

/* host_port_format: "host:port" (brackets around IPv6 hosts) into out[cap]. */
void host_port_format(const HostPort *hp, char *out, size_t cap);

/* StrBuf: a growable byte buffer, always NUL-terminated. Init with STRBUF_INIT or strbuf_init;
 * strbuf_finish frees the storage; strbuf_detach hands the string to the caller (who frees it). */
typedef struct StrBuf {
    char *data;
    size_t len;
    size_t cap;
} StrBuf;

#define STRBUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void strbuf_init(StrBuf *b);
void strbuf_finish(StrBuf *b);
void strbuf_reset(StrBuf *b);
void strbuf_append(StrBuf *b, const void *data, size_t len);
void strbuf_append_str(StrBuf *b, const char *s);
void strbuf_printf(StrBuf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
char *strbuf_detach(StrBuf *b); /* never NULL; caller frees */

/* xmalloc/xcalloc/xrealloc/xstrdup: allocation that aborts the process on out-of-memory. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
