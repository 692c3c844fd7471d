/* SPDX-License-Identifier: MIT */
/* checkpoint.c - spool models and optimizers as safetensors files (sp_save, sp_load).
 *
 * A parameter "lstm.weight_ih_l0" saved with prefix "lstm." is the tensor "weight_ih_l0", so a
 * model-only file is exactly a PyTorch state_dict. Optimizer state goes in extra tensors
 * "optim.<kind>.<slot>.<name>" plus "optim.step"; hyper-parameters, the RNG and the user's model
 * configuration go in __metadata__. Loading decodes and checks everything into temporaries
 * first and copies into the model only when nothing is left that can fail, so a bad file never
 * leaves a half-loaded model behind.
 */
#include "optim_internal.h"
#include "safetensors.h"
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *prefix_of(const sp_ckpt_opts *o) { return o && o->prefix ? o->prefix : ""; }

static int selected(const sp_tensor *p, const char *prefix)
{
    return strncmp(p->name, prefix, strlen(prefix)) == 0;
}

static char *state_name(const sp_optim *opt, int slot, const char *fname)
{
    size_t n = strlen(fname) + 64;
    char *s = malloc(n);
    if (s) snprintf(s, n, "optim.%s.%s.%s", sp_optim_kind_name(opt->cfg.kind), opt->slot_name[slot], fname);
    return s;
}

/* ------------------------------------------------------------------- save */

/* A printf'd metadata value in memory of its own (NULL if out of memory). */
static char *meta_value(const char *fmt, ...) SP_PRINTF(1, 2);
static char *meta_value(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *v = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!v) return NULL;
    va_start(ap, fmt);
    vsnprintf(v, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return v;
}

sp_status sp_save(const char *path, const sp_params *ps, const sp_optim *opt, const sp_ckpt_opts *o)
{
    if (!path || !ps) return sp_fail(SP_ERR_ARG, "sp_save: %s is NULL", !path ? "path" : "parameter set");
    if (opt && (opt->ps != ps || opt->numel != ps->numel))
        return sp_fail(SP_ERR_ARG, "sp_save %s: the optimizer was made for another parameter set", path);
    const char *prefix = prefix_of(o);
    size_t plen = strlen(prefix);
    int nsel = 0, nuser = o && o->meta ? o->n_meta : 0;
    for (int i = 0; i < ps->count; i++) {
        const sp_tensor *p = ps->list[i];
        if (!selected(p, prefix)) continue;
        const char *fn = p->name + plen;
        if (!*fn || strncmp(fn, "optim.", 6) == 0 || strcmp(fn, "__metadata__") == 0 || !sp__utf8_valid(fn, strlen(fn)))
            return sp_fail(SP_ERR_ARG, "sp_save %s: parameter \"%s\" cannot be saved as \"%s\" (empty, reserved "
                           "or not UTF-8)", path, p->name, fn);
        nsel++;
    }
    if (!nsel) return sp_fail(SP_ERR_ARG, "sp_save %s: no parameter name starts with \"%s\"", path, prefix);
    for (int i = 0; i < nuser; i++) {
        const sp_kv *kv = &o->meta[i];
        if (!kv->key || !kv->value || !sp__utf8_valid(kv->key, strlen(kv->key)) ||
            !sp__utf8_valid(kv->value, strlen(kv->value)) || strncmp(kv->key, "spool.", 6) == 0)
            return sp_fail(SP_ERR_ARG, "sp_save %s: metadata entry %d (\"%s\") is NULL, not UTF-8 or uses the "
                           "reserved prefix \"spool.\"", path, i, kv->key ? kv->key : "(null)");
        for (int j = 0; j < i; j++)
            if (strcmp(o->meta[j].key, kv->key) == 0)
                return sp_fail(SP_ERR_ARG, "sp_save %s: metadata key \"%s\" given twice", path, kv->key);
    }

    /* Refuse what sp_load would refuse: non-finite values, or doubles beyond the F32 range. */
    for (int i = 0; i < ps->count; i++) {
        const sp_tensor *p = ps->list[i];
        if (!selected(p, prefix)) continue;
        for (int s = -1; s < (opt ? opt->nslots : 0); s++) {
            const sp_real *v = (s < 0 ? ps->value : opt->slot[s]) + p->offset;
            for (size_t e = 0; e < sp_numel(p); e++)
                if (!isfinite((float)v[e]))
                    return sp_fail(SP_ERR_NONFINITE, "sp_save %s: %s of \"%s\" [%d x %d] is %g at element %zu (not "
                                   "a finite F32); nothing written", path, s < 0 ? "value" : opt->slot_name[s],
                                   p->name, p->rows, p->cols, (double)v[e], e);
        }
    }

    int nslots = opt ? opt->nslots : 0, nt = 0;
    int cap = nsel * (1 + nslots) + 1;
    sp_st_out *ts = calloc((size_t)cap, sizeof *ts);
    char **owned = calloc((size_t)cap, sizeof *owned);
    /* spool.version, spool.real, spool.rng, spool.optim.kind and one entry per config field */
    int meta_cap = nuser + 4 + sp_optim_n_fields, nm = 0, nv = 0;
    sp_kv *meta = calloc((size_t)meta_cap, sizeof *meta);
    char **vals = calloc((size_t)meta_cap + (size_t)sp_optim_n_fields, sizeof *vals); /* values and field keys */
    sp_status st = SP_OK;
    if (!ts || !owned || !meta || !vals) {
        st = sp_fail(SP_ERR_NOMEM, "sp_save %s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < ps->count; i++) {
        const sp_tensor *p = ps->list[i];
        if (!selected(p, prefix)) continue;
        sp_st_out t = {p->name + plen, 2, {p->rows, p->cols}, ps->value + p->offset, NULL};
        if (p->flags & SP_PARAM_1D) t.ndim = 1, t.shape[0] = p->cols;
        ts[nt++] = t;
        for (int s = 0; s < nslots; s++) {
            char *nm = owned[nt] = state_name(opt, s, t.name);
            if (!nm) {
                st = sp_fail(SP_ERR_NOMEM, "sp_save %s: out of memory", path);
                goto done;
            }
            ts[nt] = t;
            ts[nt].name = nm;
            ts[nt++].src = opt->slot[s] + p->offset;
        }
    }
    if (opt) ts[nt++] = (sp_st_out){"optim.step", 1, {1, 0}, NULL, &opt->step};

    for (int i = 0; i < nuser; i++) meta[nm++] = o->meta[i];
#define META(k, ...) (vals[nv] = meta_value(__VA_ARGS__), meta[nm++] = (sp_kv){k, vals[nv++]})
    META("spool.version", "%s", SP_VERSION);
    META("spool.real", "%s", SP_REAL_NAME);
    if (o && o->rng) META("spool.rng", "%016" PRIx64 ":%016" PRIx64, o->rng->s[0], o->rng->s[1]);
    if (opt) {
        META("spool.optim.kind", "%s", sp_optim_kind_name(opt->cfg.kind));
        for (int i = 0; i < sp_optim_n_fields; i++) {
            const sp_optim_field *f = &sp_optim_fields[i];
            char *key = meta_value("spool.optim.%s", f->name);
            double v = sp__optim_field_get(&opt->cfg, f);
            vals[nv++] = key;
            if (f->is_int) META(key, "%d", (int)v);
            else META(key, "%.17g", v);
        }
    }
#undef META
    for (int i = 0; i < nv; i++)
        if (!vals[i]) {
            st = sp_fail(SP_ERR_NOMEM, "sp_save %s: out of memory", path);
            goto done;
        }
    st = sp_st_write(path, ts, nt, meta, nm);
done:
    for (int i = 0; owned && i < cap; i++) free(owned[i]);
    free(owned);
    for (int i = 0; vals && i < meta_cap + sp_optim_n_fields; i++) free(vals[i]);
    free(vals);
    free(ts);
    free(meta);
    return st;
}

/* ------------------------------------------------------------------- load */

static void fmt_shape(char *b, size_t n, const sp_ckpt_tensor *t)
{
    size_t k = (size_t)snprintf(b, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++) k += (size_t)snprintf(b + k, n - k, "%s%lld", d ? " x " : "", (long long)t->shape[d]);
    if (k < n) snprintf(b + k, n - k, "]");
}

static int shape_fits(const sp_ckpt_tensor *t, const sp_tensor *p)
{
    if (t->ndim == 2) return t->shape[0] == p->rows && t->shape[1] == p->cols;
    if (t->ndim == 1) return p->rows == 1 && t->shape[0] == p->cols;
    if (t->ndim == 0) return p->rows == 1 && p->cols == 1;
    return 0;
}

static const sp_st_entry *entry(const sp_ckpt_info *ci, const char *name)
{
    return (const sp_st_entry *)sp_ckpt_find(ci, name); /* pub is the first member */
}

/* Checks tensor `fname` against parameter p and decodes it into out (numel of p). */
static sp_status decode(const sp_ckpt_info *ci, const unsigned char *buf, const char *fname, const sp_tensor *p,
                        sp_real *out)
{
    const sp_st_entry *e = entry(ci, fname);
    if (!e) return sp_fail(SP_ERR_FORMAT, "tensor \"%s\" (for parameter \"%s\" [%d x %d]) is missing", fname,
                           p->name, p->rows, p->cols);
    char sh[128];
    fmt_shape(sh, sizeof sh, &e->pub);
    int f64 = strcmp(e->pub.dtype, "F64") == 0;
    if (!f64 && strcmp(e->pub.dtype, "F32") != 0)
        return sp_fail(SP_ERR_FORMAT, "tensor \"%s\" has dtype %s, expected F32 or F64", fname, e->pub.dtype);
    if (!shape_fits(&e->pub, p))
        return sp_fail(SP_ERR_FORMAT, "tensor \"%s\" has shape %s, parameter \"%s\" is [%d x %d]", fname, sh,
                       p->name, p->rows, p->cols);
    const unsigned char *b = buf + ci->data_start + e->begin;
    size_t n = sp_numel(p);
    for (size_t i = 0; i < n; i++) {
        double x;
        if (f64) {
            uint64_t u = 0;
            for (int k = 7; k >= 0; k--) u = (u << 8) | b[8 * i + (size_t)k];
            memcpy(&x, &u, 8);
        } else {
            uint32_t u = 0;
            float fx;
            for (int k = 3; k >= 0; k--) u = (u << 8) | b[4 * i + (size_t)k];
            memcpy(&fx, &u, 4);
            x = fx;
        }
        if (!isfinite(x) || !isfinite((sp_real)x))
            return sp_fail(SP_ERR_NONFINITE, "tensor \"%s\" %s: element %zu is %g", fname, sh, i, x);
        out[i] = (sp_real)x;
    }
    return SP_OK;
}

static sp_status read_step(const sp_ckpt_info *ci, const unsigned char *buf, int64_t *step)
{
    const sp_st_entry *e = entry(ci, "optim.step");
    if (!e) return sp_fail(SP_ERR_FORMAT, "optimizer state requested but the file has no \"optim.step\"");
    if (strcmp(e->pub.dtype, "I64") != 0 || !(e->pub.ndim == 0 || (e->pub.ndim == 1 && e->pub.shape[0] == 1)))
        return sp_fail(SP_ERR_FORMAT, "\"optim.step\" must be I64 of shape [1], not %s", e->pub.dtype);
    const unsigned char *b = buf + ci->data_start + e->begin;
    uint64_t u = 0;
    for (int k = 7; k >= 0; k--) u = (u << 8) | b[k];
    if (u > (uint64_t)INT64_MAX) return sp_fail(SP_ERR_FORMAT, "\"optim.step\" is negative");
    *step = (int64_t)u;
    return SP_OK;
}

static int parse_hex64(const char *s, uint64_t *v)
{
    *v = 0;
    for (int k = 0; k < 16; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        *v = (*v << 4) | (uint64_t)d;
    }
    return 1;
}

static sp_status read_rng(const sp_ckpt_info *ci, sp_rng *r)
{
    const char *s = sp_ckpt_meta(ci, "spool.rng");
    if (!s) return sp_fail(SP_ERR_FORMAT, "an RNG state was requested but the file has no \"spool.rng\" metadata");
    if (strlen(s) != 33 || s[16] != ':' || !parse_hex64(s, &r->s[0]) || !parse_hex64(s + 17, &r->s[1]))
        return sp_fail(SP_ERR_FORMAT, "metadata \"spool.rng\" is not two 16-digit hex words: \"%.40s\"", s);
    return SP_OK;
}

/* Is file tensor `name` (starting "optim.") a state tensor this optimizer expects? */
static int expected_state(const sp_optim *opt, const sp_params *ps, const char *prefix, const char *name)
{
    if (strcmp(name, "optim.step") == 0) return 1;
    const char *kind = sp_optim_kind_name(opt->cfg.kind);
    size_t kl = strlen(kind);
    if (strncmp(name + 6, kind, kl) != 0 || name[6 + kl] != '.') return 0;
    const char *rest = name + 7 + kl;
    for (int s = 0; s < opt->nslots; s++) {
        size_t sl = strlen(opt->slot_name[s]);
        if (strncmp(rest, opt->slot_name[s], sl) == 0 && rest[sl] == '.') {
            const char *fn = rest + sl + 1;
            size_t pl = strlen(prefix);
            for (int i = 0; i < ps->count; i++)
                if (strncmp(ps->list[i]->name, prefix, pl) == 0 && strcmp(ps->list[i]->name + pl, fn) == 0) return 1;
        }
    }
    return 0;
}

static sp_status load_into(const sp_ckpt_info *ci, const unsigned char *buf, sp_params *ps, sp_optim *opt,
                           const sp_ckpt_opts *o)
{
    const char *prefix = prefix_of(o);
    size_t plen = strlen(prefix);
    int nsel = 0;
    for (int i = 0; i < ps->count; i++) nsel += selected(ps->list[i], prefix);
    if (!nsel) return sp_fail(SP_ERR_ARG, "no parameter name starts with \"%s\"", prefix);
    if (opt && (opt->ps != ps || opt->numel != ps->numel))
        return sp_fail(SP_ERR_ARG, "the optimizer was made for another parameter set");

    /* Every model tensor of the file must be a parameter (strict, like load_state_dict). */
    for (int i = 0; i < ci->nt; i++) {
        const char *fn = ci->t[i].pub.name;
        if (strncmp(fn, "optim.", 6) == 0) {
            if (opt && !expected_state(opt, ps, prefix, fn))
                return sp_fail(SP_ERR_FORMAT, "optimizer tensor \"%s\" does not belong to this %s optimizer "
                               "(different kind or configuration?)", fn, sp_optim_kind_name(opt->cfg.kind));
            continue;
        }
        int found = 0;
        for (int k = 0; k < ps->count && !found; k++)
            found = selected(ps->list[k], prefix) && strcmp(ps->list[k]->name + plen, fn) == 0;
        if (!found) return sp_fail(SP_ERR_FORMAT, "unexpected tensor \"%s\": no parameter \"%s%s\" in the model", fn, prefix, fn);
    }
    if (opt) {
        const char *k = sp_ckpt_meta(ci, "spool.optim.kind");
        if (!k) return sp_fail(SP_ERR_FORMAT, "optimizer state requested but the file has none (no \"spool.optim.kind\")");
        if (strcmp(k, sp_optim_kind_name(opt->cfg.kind)) != 0)
            return sp_fail(SP_ERR_FORMAT, "the file holds %.20s optimizer state, not %s", k, sp_optim_kind_name(opt->cfg.kind));
    }

    /* temporaries laid out like the slabs: value, then each state slot, each ps->numel long */
    int nslots = opt ? opt->nslots : 0;
    const size_t n_all = ps->numel;
    sp_real *tmp = malloc((n_all ? n_all : 1) * (size_t)(1 + nslots) * sizeof *tmp);
    if (!tmp) return sp_fail(SP_ERR_NOMEM, "out of memory for %zu values", n_all * (size_t)(1 + nslots));
    int64_t step = 0;
    sp_rng rng = {{0, 0}};
    sp_status st = SP_OK;
    if (opt && (st = read_step(ci, buf, &step)) != SP_OK) goto done;
    if (o && o->rng && (st = read_rng(ci, &rng)) != SP_OK) goto done;
    for (int i = 0; i < ps->count && st == SP_OK; i++) {
        const sp_tensor *p = ps->list[i];
        if (!selected(p, prefix)) continue;
        const char *fn = p->name + plen;
        st = decode(ci, buf, fn, p, tmp + p->offset);
        for (int s = 0; s < nslots && st == SP_OK; s++) {
            char *sn = state_name(opt, s, fn);
            st = sn ? decode(ci, buf, sn, p, tmp + (size_t)(s + 1) * n_all + p->offset)
                    : sp_fail(SP_ERR_NOMEM, "out of memory");
            free(sn);
        }
    }
    if (st != SP_OK) goto done;

    /* Nothing below can fail: commit. */
    for (int i = 0; i < ps->count; i++) {
        const sp_tensor *p = ps->list[i];
        if (!selected(p, prefix)) continue;
        size_t n = sp_numel(p);
        memcpy(ps->value + p->offset, tmp + p->offset, n * sizeof *tmp);
        for (int s = 0; s < nslots; s++)
            memcpy(opt->slot[s] + p->offset, tmp + (size_t)(s + 1) * n_all + p->offset, n * sizeof *tmp);
    }
    if (opt) opt->step = step;
    if (o && o->rng) *o->rng = rng;
done:
    free(tmp);
    return st;
}

static sp_status load_mem(const unsigned char *buf, size_t len, sp_params *ps, sp_optim *opt, const sp_ckpt_opts *o,
                          const char *who)
{
    sp_status st;
    sp_ckpt_info *ci = sp_ckpt_parse(buf, len);
    if (!ci) {
        st = sp_last_status();
    } else {
        st = load_into(ci, buf, ps, opt, o);
        sp_ckpt_close(ci);
    }
    if (st != SP_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", sp_last_error());
        sp_fail(st, "%s: %s", who, msg);
    }
    return st;
}

sp_status sp_load_mem(const unsigned char *buf, size_t len, sp_params *ps, sp_optim *opt, const sp_ckpt_opts *o)
{
    if (!ps) return sp_fail(SP_ERR_ARG, "sp_load: parameter set is NULL");
    return load_mem(buf, len, ps, opt, o, "sp_load");
}

sp_status sp_load(const char *path, sp_params *ps, sp_optim *opt, const sp_ckpt_opts *o)
{
    if (!path || !ps) return sp_fail(SP_ERR_ARG, "sp_load: %s is NULL", !path ? "path" : "parameter set");
    FILE *f = fopen(path, "rb");
    if (!f) return sp_fail(SP_ERR_IO, "sp_load: cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    unsigned char *buf = NULL;
    sp_status st;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0) {
        st = sp_fail(SP_ERR_IO, "sp_load: cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    size_t len = (size_t)sb.st_size;
    if (!(buf = malloc(len ? len : 1))) {
        st = sp_fail(SP_ERR_NOMEM, "sp_load: out of memory for %s (%zu bytes)", path, len);
        goto out;
    }
    if (fread(buf, 1, len, f) != len) {
        st = sp_fail(SP_ERR_IO, "sp_load: cannot read %s", path);
        goto out;
    }
    {
        char who[300];
        snprintf(who, sizeof who, "sp_load %s", path);
        st = load_mem(buf, len, ps, opt, o, who);
    }
out:
    free(buf);
    fclose(f);
    return st;
}
