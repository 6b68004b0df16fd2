/* PNG decoding under max_pixels (util/png.c). The first byte picks the
 * channels asked for; a decoded image never exceeds the pixel cap. */
#include "tests/fuzz/fuzz.h"
#include "util/png.h"

#define MAX_PIXELS (256 * 256)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const int channels[4] = {0, 1, 3, 4};
    int want = channels[data[0] & 3];
    util_image img;
    char msg[256];
    if (util_png_decode(data + 1, size - 1, want, MAX_PIXELS, &img, msg, sizeof msg) == 0) {
        FUZZ_CHECK(img.width > 0 && img.height > 0 && (size_t)img.width * (size_t)img.height <= MAX_PIXELS);
        FUZZ_CHECK(want == 0 || img.channels == want);
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < (size_t)img.width * img.height * img.channels; i++) sink ^= img.data[i];
        (void)sink;
        util_image_free(&img);
    }
    return 0;
}
