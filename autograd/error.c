/* SPDX-License-Identifier: MIT */
/* error.c - status strings, the thread-local last error for calls that have no tape, the
 * seeded random generator and the counter-based noise masks drawn from it (kept here because they
 * are as small and as shared as the errors are). */
#include "tape_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_msg[512];
static _Thread_local sp_status last_status;

const char *sp_status_str(sp_status s)
{
    switch (s) {
    case SP_OK: return "ok";
    case SP_ERR_SHAPE: return "shape mismatch";
    case SP_ERR_ARG: return "bad argument";
    case SP_ERR_NOMEM: return "out of memory";
    case SP_ERR_IO: return "i/o error";
    case SP_ERR_FORMAT: return "bad file format";
    case SP_ERR_NONFINITE: return "non-finite value";
    case SP_ERR_STATE: return "object in error state";
    }
    return "unknown status";
}

const char *sp_last_error(void) { return last_msg; }
sp_status sp_last_status(void) { return last_status; }

void sp_clear_error(void)
{
    last_msg[0] = 0;
    last_status = SP_OK;
}

sp_status sp_fail(sp_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    last_status = s;
    return s;
}

/* ------------------------------------------------------------------- rng */

/* splitmix64's finaliser: every input bit reaches every output bit */
static uint64_t splitmix64(uint64_t *x) { return sp__mix64(*x += 0x9E3779B97F4A7C15ull); }

void sp_rng_seed(sp_rng *r, uint64_t seed)
{
    if (!r) return;
    r->s[0] = splitmix64(&seed);
    r->s[1] = splitmix64(&seed);
    if (!r->s[0] && !r->s[1]) r->s[1] = 1;
}

/* xorshift128+ (Vigna); the high 32 bits are the well-mixed ones. */
uint32_t sp_rng_u32(sp_rng *r)
{
    uint64_t a = r->s[0], b = r->s[1];
    r->s[0] = b;
    a ^= a << 23;
    r->s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return (uint32_t)((r->s[1] + b) >> 32);
}

double sp_rng_uniform(sp_rng *r) { return sp_rng_u32(r) * (1.0 / 4294967296.0); }

double sp_rng_normal(sp_rng *r)
{
    double u = 1.0 - sp_rng_uniform(r), v = sp_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ------------------------------------------------------------ counter-based noise (noise.h) */

uint64_t sp__noise_key(sp_rng *r)
{
    uint64_t hi = sp_rng_u32(r);
    return hi << 32 | sp_rng_u32(r);
}

uint64_t sp__noise_bits(uint64_t key, uint64_t what, uint64_t row, uint64_t col)
{
    return sp__noise_col(sp__noise_row(sp__noise_what(key, what), row), col);
}

int sp_rng_below(sp_rng *r, int n) { return n <= 1 ? 0 : (int)(((uint64_t)sp_rng_u32(r) * (uint64_t)n) >> 32); }
