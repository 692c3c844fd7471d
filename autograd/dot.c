/* SPDX-License-Identifier: MIT */
/* dot.c - the recorded graph as Graphviz dot.
 *
 * Ids are tape indices (n<i>) and parameter order (p<k>), never pointers, so the same program
 * writes the same file and outputs can be diffed. Nodes whose names share a '/'-separated prefix
 * go into nested clusters ("lstm0" > "lstm0/t3"), which is how an unrolled network shows its
 * layers and time steps. */
#include "tape_internal.h"
#include "file_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const sp_tensor *x;
    int key;       /* tape index for records, -1-k for the k-th parameter */
    size_t plen;   /* length of the name's prefix (up to the last '/'), 0 if none */
} dot_node;

static size_t prefix_len(const char *name)
{
    const char *s = strrchr(name, '/');
    return s ? (size_t)(s - name) : 0;
}

/* Order by prefix, component by component ('/' sorts first), then by tape order. */
static int cmp_node(const void *pa, const void *pb)
{
    const dot_node *a = pa, *b = pb;
    size_t n = a->plen < b->plen ? a->plen : b->plen;
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = a->x->name[i] == '/' ? 1 : (unsigned char)a->x->name[i];
        unsigned char cb = b->x->name[i] == '/' ? 1 : (unsigned char)b->x->name[i];
        if (ca != cb) return ca - cb;
    }
    if (a->plen != b->plen) return a->plen < b->plen ? -1 : 1;
    return a->key < b->key ? -1 : a->key > b->key;
}

static void put_escaped(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i]; i++) {
        if (s[i] == '"' || s[i] == '\\') fputc('\\', f);
        fputc(s[i], f);
    }
}

static void put_id(FILE *f, const dot_node *d)
{
    if (d->key >= 0) fprintf(f, "n%d", d->key);
    else fprintf(f, "p%d", -1 - d->key);
}

static void put_node(FILE *f, const dot_node *d, const sp_tape *t, int indent)
{
    const sp_tensor *x = d->x;
    fprintf(f, "%*s", indent, "");
    put_id(f, d);
    fputs(" [label=\"", f);
    put_escaped(f, x->name, (size_t)-1);
    if (d->key >= 0) fprintf(f, "\\n%s", sp_op_name(t->rec[d->key].op));
    fprintf(f, " [%d x %d]\"", x->rows, x->cols);
    if (x->flags & SP_PARAM) fputs(", shape=box, style=\"filled,bold\", fillcolor=\"#fff2a8\"", f);
    else if (t->rec[d->key].op == SP_OP_CONST) fputs(", shape=box, style=filled, fillcolor=\"#dddddd\"", f);
    else if (t->rec[d->key].op == SP_OP_LEAF) fputs(", shape=box, style=filled, fillcolor=\"#cfe8ff\"", f);
    else if (x->flags & SP_VIEW) fputs(", style=dashed", f);
    fputs("];\n", f);
}

/* Number of '/'-components the prefixes of a and b share. */
static int shared_depth(const char *a, size_t na, const char *b, size_t nb)
{
    int depth = 0;
    size_t i = 0;
    while (i < na && i < nb) {
        size_t j = i;
        while (j < na && a[j] != '/') j++;
        size_t k = i;
        while (k < nb && b[k] != '/') k++;
        if (j != k || memcmp(a + i, b + i, j - i) != 0) break;
        depth++;
        i = j + 1;
    }
    return depth;
}

static int depth_of(const char *s, size_t n)
{
    if (n == 0) return 0;
    int d = 1;
    for (size_t i = 0; i < n; i++) d += s[i] == '/';
    return d;
}

sp_status sp_tape_dot(const sp_tape *t, FILE *f, int clusters)
{
    if (!t || !f) return sp_fail(SP_ERR_ARG, "sp_tape_dot: %s is NULL", t ? "file" : "tape");
    /* Nodes: every record, plus each parameter the first time a record uses it. */
    int cap = t->n_rec, n = 0, np = 0;
    for (int i = 0; i < t->n_rec; i++) cap += t->rec[i].n_in;
    dot_node *nodes = malloc((size_t)(cap ? cap : 1) * sizeof *nodes);
    if (!nodes) return sp_fail(SP_ERR_NOMEM, "sp_tape_dot: out of memory");
    for (int i = 0; i < t->n_rec; i++) {
        for (int k = 0; k < t->rec[i].n_in; k++) {
            const sp_tensor *p = t->rec[i].in[k];
            if (!(p->flags & SP_PARAM)) continue;
            int seen = 0;
            for (int m = 0; m < n && !seen; m++) seen = nodes[m].x == p;
            if (!seen) nodes[n++] = (dot_node){p, -1 - np++, clusters ? prefix_len(p->name) : 0};
        }
        const sp_tensor *o = t->rec[i].out;
        nodes[n++] = (dot_node){o, i, clusters ? prefix_len(o->name) : 0};
    }
    /* Key of the parameter node for an input tensor, for the edges. */
    qsort(nodes, (size_t)n, sizeof *nodes, cmp_node);

    fputs("digraph spool {\n  rankdir=TB;\n  graph [fontname=\"Helvetica\", fontsize=11];\n  node [shape=ellipse, fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [arrowsize=0.6];\n", f);
    const char *open = "";
    size_t open_len = 0;
    int open_depth = 0;
    for (int m = 0; m < n; m++) {
        const char *nm = nodes[m].x->name;
        size_t pl = nodes[m].plen;
        int keep = shared_depth(open, open_len, nm, pl), want = depth_of(nm, pl);
        for (; open_depth > keep; open_depth--) fprintf(f, "%*s}\n", 2 * open_depth, "");
        while (open_depth < want) {
            /* open the cluster for component open_depth of nm */
            size_t end = 0;
            for (int c = 0; c <= open_depth; c++) {
                if (c) end++;
                while (end < pl && nm[end] != '/') end++;
            }
            size_t start = end;
            while (start > 0 && nm[start - 1] != '/') start--;
            open_depth++;
            fprintf(f, "%*ssubgraph \"cluster_", 2 * open_depth, "");
            put_escaped(f, nm, end);
            fprintf(f, "\" {\n%*slabel=\"", 2 * open_depth + 2, "");
            put_escaped(f, nm + start, end - start);
            fprintf(f, "\"; style=rounded; color=\"#888888\";\n");
        }
        open = nm;
        open_len = pl;
        put_node(f, &nodes[m], t, 2 * open_depth + 2);
    }
    for (; open_depth > 0; open_depth--) fprintf(f, "%*s}\n", 2 * open_depth, "");

    for (int i = 0; i < t->n_rec; i++)
        for (int k = 0; k < t->rec[i].n_in; k++) {
            const sp_tensor *x = t->rec[i].in[k];
            dot_node src = {x, x->id, 0};
            if (x->flags & SP_PARAM)
                for (int m = 0; m < n; m++)
                    if (nodes[m].x == x) src = nodes[m];
            fputs("  ", f);
            put_id(f, &src);
            fprintf(f, " -> n%d", i);
            if (t->rec[i].n_in > 1) fprintf(f, " [label=\"%d\", fontsize=8]", k);
            fputs(";\n", f);
        }
    fputs("}\n", f);
    free(nodes);
    return ferror(f) ? sp_fail(SP_ERR_IO, "sp_tape_dot: write failed") : SP_OK;
}

sp_status sp_tape_dot_file(const sp_tape *t, const char *path, int clusters)
{
    if (!path) return sp_fail(SP_ERR_ARG, "sp_tape_dot_file: path is NULL");
    sp_file *w = sp__file_begin(path, "sp_tape_dot_file"); /* refuses /dev/null, FIFOs, directories */
    if (!w) return sp_last_status();
    sp_status s = sp_tape_dot(t, sp_file_stream(w), clusters);
    if (s != SP_OK) {
        sp_file_abort(w);
        return s;
    }
    return sp_file_commit(w);
}
