/* SPDX-License-Identifier: MIT */
/* onnx_none.c - the ONNX export API (include/spool/onnx.h) in a library built without it
 * (meson -Donnx=disabled, or auto without protobuf-c or onnx.proto): every call fails with a
 * message saying how to get it, so programs can call the API unconditionally. */
#include "spool.h"

int sp_onnx_available(void) { return 0; }

sp_status sp_onnx_export(const sp_onnx_model *m, const char *path)
{
    (void)m;
    return sp_fail(SP_ERR_STATE, "sp_onnx_export: '%s' not written: this spool was built without ONNX export "
                                 "(install protobuf-c-compiler, libprotobuf-c-dev and libonnx-dev, and rebuild "
                                 "with meson -Donnx=enabled)", path ? path : "(null)");
}
