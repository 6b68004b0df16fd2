/* The dataset file format (jobs/dataset.c jobs_dataset_map): a file that
 * maps has images and labels inside the mapping. */
#include <unistd.h>

#include "jobs/dataset.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!*path) snprintf(path, sizeof path, "/tmp/codid-fuzz-dataset-%d.cds", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    jobs_dataset ds;
    char msg[256];
    if (jobs_dataset_map(path, &ds, msg, sizeof msg) == 0) {
        FUZZ_CHECK(ds.count >= 0 &&
                   jobs_dataset_shape_valid((uint32_t)ds.height, (uint32_t)ds.width, (uint32_t)ds.channels));
        size_t n = jobs_dataset_image_bytes(&ds);
        volatile uint8_t sink = 0;
        for (int i = 0; i < ds.count; i++) {
            const uint8_t *img = jobs_dataset_image(&ds, i);
            sink ^= img[0];
            sink ^= img[n - 1];
            if (ds.labels) sink ^= ds.labels[i];
        }
        (void)sink;
        jobs_dataset_unmap(&ds);
    }
    unlink(path);
    return 0;
}
