/*
 * internal.hpp - shared by the engine's C++ translation units; never included
 * by C. Keeps the conventions of engine.h in one place: errors, the catch-all
 * guard at every ABI entry, the context.
 */
#pragma once

#include <torch/torch.h>

#include <cstdarg>
#include <cstring>
#include <mutex>
#include <string>

#include "engine/engine.h"

struct eng_ctx {
    torch::Device device{torch::kCPU};
    int threads = 0;
    std::string device_name = "cpu";
};

namespace eng {

/* Fill err (may be NULL) and return code. */
int fail(eng_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
inline void ok(eng_error *err) {
    if (err) {
        err->code = ENG_OK;
        err->msg[0] = '\0';
    }
}

/* Thrown inside the engine to carry a code and message to the ABI boundary. */
struct Error {
    int code;
    std::string msg;
};
[[noreturn]] void raise(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Module constructors draw their initial weights from torch's one global
 * generator; a seeded construction holds this lock from the seeding to the
 * last constructor, so that two threads building models at once (two
 * workers, say) each get the weights their seed promises. */
std::mutex &init_mutex();
struct SeededInit {
    std::lock_guard<std::mutex> lock;
    explicit SeededInit(uint64_t seed) : lock(init_mutex()) { torch::manual_seed(seed); }
};

} // namespace eng

/* Wrap the body of every extern "C" function: no exception crosses engine.h. */
#define ENG_GUARD(err, ...)                                                               \
    try {                                                                                 \
        __VA_ARGS__                                                                       \
    } catch (const eng::Error &e_) {                                                      \
        return eng::fail((err), e_.code, "%s", e_.msg.c_str());                           \
    } catch (const c10::Error &e_) {                                                      \
        return eng::fail((err), ENG_EINTERNAL, "torch: %s", e_.what_without_backtrace()); \
    } catch (const std::bad_alloc &) {                                                    \
        return eng::fail((err), ENG_ENOMEM, "out of memory");                             \
    } catch (const std::exception &e_) {                                                  \
        return eng::fail((err), ENG_EINTERNAL, "%s", e_.what());                          \
    }
