/* SPDX-License-Identifier: MIT */
/* onnx_none.c - the ONNX export and weight-loading API (include/spool/onnx.h) in a library built without it
 * (meson -Donnx=disabled, or auto without protobuf-c or onnx.proto): every call fails with a
 * message saying how to get it, so programs can call the API unconditionally. */
#include "spool.h"

int sp_onnx_available(void) { return 0; }

#define NO_ONNX "this spool was built without ONNX (install protobuf-c-compiler, libprotobuf-c-dev and libonnx-dev, " \
                "and rebuild with meson -Donnx=enabled)"

sp_status sp_onnx_export(const sp_onnx_model *m, const char *path)
{
    (void)m;
    return sp_fail(SP_ERR_STATE, "sp_onnx_export: '%s' not written: " NO_ONNX, path ? path : "(null)");
}

sp_status sp_onnx_export_tape(const sp_onnx_tape *g, const char *path)
{
    (void)g;
    return sp_fail(SP_ERR_STATE, "sp_onnx_export_tape: '%s' not written: " NO_ONNX, path ? path : "(null)");
}

sp_status sp_onnx_load_weights(const char *path, const sp_onnx_model *m)
{
    (void)m;
    return sp_fail(SP_ERR_STATE, "sp_onnx_load_weights: '%s' not read: " NO_ONNX, path ? path : "(null)");
}

sp_status sp_onnx_load_weights_mem(const unsigned char *buf, size_t len, const sp_onnx_model *m, const char *name)
{
    (void)buf, (void)len, (void)m;
    return sp_fail(SP_ERR_STATE, "sp_onnx_load_weights: '%s' not read: " NO_ONNX, name ? name : "(memory)");
}
