/*
 * engine_stub.h - tests/engine_stub.c: engine.h's functions without torch,
 * for the tests of our own threads (tests/test_threads.c, and `make tsan`,
 * where libtorch's OpenMP pool would make ThreadSanitizer report torch's
 * internals). Generation makes deterministic pixels from the seed, an
 * adapter is its file name's number, a trainer counts steps and writes
 * small real files (checkpoint, export) through engine/safetensors.h.
 * The counters say what is still allocated, so a test can see leaks and
 * double frees.
 */
#ifndef CODID_TESTS_ENGINE_STUB_H
#define CODID_TESTS_ENGINE_STUB_H

#include <stdint.h>

#include "engine/engine.h"

eng_model *stub_model(void);
eng_ctx *stub_ctx(void);
/* "stub-<id>": the number an adapter was loaded from */
int64_t stub_adapter_id(const eng_adapter *a);
int stub_adapters_alive(void);
int stub_trainers_alive(void);
/* a pause in each sampling step, so that requests pile up */
void stub_set_step_delay_us(int us);

#endif
