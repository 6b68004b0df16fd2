/* The safetensors header and tensor table (engine/safetensors.c): every
 * tensor of a file that parses lies inside the file and its byte count
 * matches its shape. */
#include <string.h>

#include "engine/safetensors.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    st_file f;
    char msg[256];
    if (st_parse(buf, size, &f, msg, sizeof msg) == ST_OK) {
        for (size_t i = 0; i < f.count; i++) {
            const st_tensor *t = &f.tensors[i];
            FUZZ_CHECK(t->data >= f.buf && t->data + t->nbytes <= f.buf + f.size);
            size_t n = st_dtype_size(t->dtype);
            for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
            FUZZ_CHECK(n == t->nbytes);
            FUZZ_CHECK(st_find(&f, t->name) == t);
        }
        char value[64];
        st_metadata_get(&f, "codid.base", value, sizeof value);
    }
    st_close(&f);
    return 0;
}
