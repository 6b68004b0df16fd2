/* The JSON validator of job requests (jobs/jobspec.c jobs_spec_parse): any
 * body either parses into a spec with a positive step total or is refused
 * with a message. */
#include "jobs/jobspec.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = fuzz_cstr(data, size);
    if (!json) return 0;
    jobs_spec spec;
    char msg[512] = "";
    if (jobs_spec_parse(json, &spec, msg, sizeof msg) == 0) {
        FUZZ_CHECK(jobs_spec_total(&spec) > 0);
        jobs_spec_free(&spec);
    } else {
        FUZZ_CHECK(*msg);
    }
    free(json);
    return 0;
}
