/* SPDX-License-Identifier: MIT */
/* outside.c - a program outside spool's tree, built against an installed spool by
 * tests/test_install.sh (pkg-config shared and static, CMake, a meson parent project): one
 * training step of a tiny model through the public API, checked against numbers worked out by
 * hand, and the header's version checked against the library's. */
#include <spool.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    if (strcmp(sp_version(), SP_VERSION) || SP_VERSION_NUMBER != SP_VERSION_ENCODE(SP_VERSION_MAJOR, SP_VERSION_MINOR, SP_VERSION_PATCH)) {
        fprintf(stderr, "outside: header %s, library %s\n", SP_VERSION, sp_version());
        return 1;
    }
    sp_params *ps = sp_params_new();
    sp_tensor *w = sp_param(ps, "w", 1, 2);
    w->data[0] = 2, w->data[1] = -1;
    sp_tape *t = sp_tape_new();
    sp_tensor *x = sp_const(t, 1, 2);
    x->data[0] = 3, x->data[1] = 4;
    sp_tensor *loss = sp_sum(t, sp_mul(t, x, w)); /* 3*2 + 4*(-1) = 2 */
    if (!ps || !w || !loss || sp_backward(t, loss) != SP_OK) {
        fprintf(stderr, "outside: %s %s\n", t ? sp_tape_errmsg(t) : "", sp_last_error());
        return 1;
    }
    int ok = fabs(loss->data[0] - 2) < 1e-6 && fabs(w->grad[0] - 3) < 1e-6 && fabs(w->grad[1] - 4) < 1e-6;
    printf("outside: spool %s, loss %g, dloss/dw = [%g %g] %s\n", sp_version(), (double)loss->data[0],
           (double)w->grad[0], (double)w->grad[1], ok ? "ok" : "WRONG");
    sp_tape_free(t);
    sp_params_free(ps);
    return ok ? 0 : 1;
}
