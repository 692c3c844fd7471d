/* SPDX-License-Identifier: MIT */
/* demo.c - the smallest complete use of spool's core: a two-layer network learns to tell which
 * of two interleaved spirals a point belongs to, trained with plain SGD. Prints a falling loss. */
#include "spool.h"
#include "common/opts.h"
#include "common/progress.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int steps, hidden;
    uint64_t seed;
    const char *dot;
} demo_opts;

static const ex_opt OPTS[] = {
    EX_OPT("steps", EX_INT, demo_opts, steps, "300", 1, 100000000, 0, "N", "SGD steps"),
    EX_OPT("hidden", EX_INT, demo_opts, hidden, "32", 1, 65536, 0, "H", "hidden units"),
    EX_OPT("seed", EX_U64, demo_opts, seed, "1", 0, 0, 0, "S", "random seed (data and init)"),
    EX_OPT("dot", EX_STR, demo_opts, dot, NULL, 0, 0, 0, "FILE", "write the graph of one training step as Graphviz dot"),
    EX_OPT_PRECISION(0),
};
static const ex_cli CLI = {"spool-demo",
                           "Usage: spool-demo [options]\n"
                           "Trains a 2-layer tanh network on two spirals with SGD and prints the loss.\n",
                           NULL, NULL, NULL, OPTS, sizeof OPTS / sizeof OPTS[0], 0, NULL};

int main(int argc, char **argv)
{
    int N = 256;
    demo_opts o = {0};
    ex_args args;
    int rc = ex_cli_parse(&CLI, argc, argv, &o, &args);
    if (rc >= 0) return rc;
    int steps = o.steps, hidden = o.hidden;
    const char *dot_path = o.dot;
    uint64_t seed = o.seed;
    printf("spool-demo: steps %d hidden %d seed %llu | %s\n", steps, hidden, (unsigned long long)seed, sp_info());

    sp_rng rng;
    sp_rng_seed(&rng, seed);
    sp_params *ps = sp_params_new();
    sp_tensor *W1 = sp_param(ps, "layer1/W", 2, hidden), *b1 = sp_param(ps, "layer1/b", 1, hidden);
    sp_tensor *W2 = sp_param(ps, "layer2/W", hidden, 2), *b2 = sp_param(ps, "layer2/b", 1, 2);
    for (size_t k = 0; k < ps->numel; k++) ps->value[k] = (sp_real)(sp_rng_normal(&rng) * 0.5);
    (void)b1, (void)b2;

    /* two spirals */
    float *xy = malloc(sizeof(float) * 2 * N);
    int *label = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) {
        double r = (double)(i / 2) / (N / 2) * 2.5 + 0.2, a = r * 2.2 + (i % 2) * M_PI;
        xy[2 * i] = (float)(r * cos(a) + 0.05 * sp_rng_normal(&rng));
        xy[2 * i + 1] = (float)(r * sin(a) + 0.05 * sp_rng_normal(&rng));
        label[i] = i % 2;
    }

    sp_tape *t = sp_tape_new();
    double first = 0, loss = 0;
    rc = 0;
    ex_progress pg; /* the examples' one progress layer: here only its permanent lines */
    ex_progress_init(&pg, steps, 0, 0);
    for (int s = 0; s <= steps; s++) {
        sp_tape_reset(t);
        sp_params_zero_grad(ps);
        sp_tensor *x = sp_const(t, N, 2);
        for (int i = 0; i < 2 * N; i++) x->data[i] = xy[i];
        sp_name(t, x, "points");
        sp_tape_scope(t, "layer1");
        sp_tensor *h = sp_tanh(t, sp_add(t, sp_matmul(t, x, W1), b1));
        sp_tape_scope(t, "layer2");
        sp_tensor *logits = sp_add(t, sp_matmul(t, h, W2), b2);
        sp_tape_scope(t, "loss");
        sp_tensor *l = sp_softmax_xent(t, logits, label, NULL);
        if (sp_backward(t, l) != SP_OK) {
            fprintf(stderr, "spool-demo: %s\n", sp_tape_errmsg(t));
            rc = 1;
            break;
        }
        for (size_t k = 0; k < ps->numel; k++) ps->value[k] -= (sp_real)0.5 * ps->grad[k];
        if (s == 0 && dot_path && sp_tape_dot_file(t, dot_path, 1) != SP_OK) {
            fprintf(stderr, "spool-demo: --dot: %s\n", sp_last_error());
            rc = 1;
            break;
        }
        loss = l->data[0];
        if (s == 0) first = loss;
        if (s % (steps / 10 > 0 ? steps / 10 : 1) == 0) ex_progress_line(&pg, stdout, "step %4d  loss %.4f", s, loss);
    }
    if (rc == 0) printf("loss %.4f -> %.4f\n", first, loss);
    sp_tape_free(t);
    sp_params_free(ps);
    free(xy);
    free(label);
    return rc ? rc : loss < first ? 0 : 1;
}
