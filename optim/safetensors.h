/* SPDX-License-Identifier: MIT */
/* safetensors.h - the safetensors format itself, apart from what spool puts in it: parsing and
 * validating a file's header (safetensors.c) and writing a file atomically from a list of
 * tensors. Internal to spool; checkpoint.c maps parameters and optimizer state onto it. */
#ifndef SP_SAFETENSORS_H
#define SP_SAFETENSORS_H

#include "spool.h"

/* The reference reader refuses headers above 100 MB ("header too large"). */
#define SP_ST_MAX_HEADER 100000000ull

typedef struct {
    sp_ckpt_tensor pub;
    uint64_t begin, end;      /* byte range inside the data buffer */
    size_t elem;              /* bytes per element */
} sp_st_entry;

struct sp_ckpt_info {
    int nt;
    sp_st_entry *t;           /* sorted by name */
    int nm;
    sp_kv *meta;
    uint64_t data_start;      /* 8 + header length: file offset of the data buffer */
    uint64_t data_len;
};

/* Parses and validates the header (hdr, hdr_len bytes: the JSON) of a file whose data buffer is
 * data_len bytes. NULL with SP_ERR_FORMAT/SP_ERR_NOMEM in sp_last_error on any problem. */
sp_ckpt_info *sp_st_parse_header(const unsigned char *hdr, size_t hdr_len, uint64_t data_len);

/* One tensor to write: F32 from sp_real values (src) or I64 from a single int64 (i64). */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    const sp_real *src;       /* NULL: an I64 tensor holding *i64 (shape [1]) */
    const int64_t *i64;
} sp_st_out;

/* Writes tensors and metadata to path atomically (sp_file_begin: temp file, fsync, rename, fsync
 * of the directory; a device or FIFO at path is refused). Tensors are laid out I64 first, then by name, as the reference writer orders by
 * alignment then name; the header is padded with spaces to a multiple of 8. */
sp_status sp_st_write(const char *path, sp_st_out *ts, int nt, const sp_kv *meta, int nm);

#endif
