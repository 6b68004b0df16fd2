/*
 * engine.h - the only door into libtorch.
 *
 * Everything the daemon knows about neural networks goes through this header:
 * a frozen diffusers-style UNet2DModel (eng_model), the trainers that
 * pretrain a base model or distill a per-task adapter (eng_trainer), the
 * samplers (eng_generate) and the task condition builders (eng_task_apply).
 *
 * Conventions
 *   - Opaque handles; every object the engine allocates has a free function.
 *   - Every call that can fail returns ENG_OK (0) or a negative eng_status and,
 *     when `err` is not NULL, fills it with the code and a message. A failing
 *     call invokes no callback and leaves its output pointers untouched.
 *   - No C++ exception and no torch type crosses this header.
 *   - Parameter structs have an *_params_init() that fills defaults; callers
 *     set only what they change.
 *   - Images cross as 8-bit, interleaved (height, width, channels) buffers,
 *     tensors as float32 in (n, c, h, w) order.
 *   - Every enum has a *_name() / *_from_name() pair and a *_COUNT; callers
 *     spell an option with those, never with a table of their own.
 *   - Defaults (parameters, sampling steps) are decided here: *_params_init
 *     and eng_default_steps; callers ask instead of restating them.
 *
 * Threads
 *   What may run at once on one eng_model m (the daemon runs all of these:
 *   the batcher generates, workers train adapters, prepare threads load
 *   them; see api/batcher.c, jobs/worker.c, api/adapters.h):
 *   - m is read-only once loaded or created. Any number of threads may at
 *     once call eng_generate and eng_model_forward on m, load and free
 *     adapters on m (eng_adapter_load), and create, step, checkpoint and
 *     export adapter trainers on m (eng_trainer_create_adapter): every
 *     trainer holds its own adapter, EMA and optimizer; the base's weights
 *     are shared, never written.
 *   - One object, one thread at a time: an eng_adapter, an eng_trainer or
 *     an eng_classifier is used by a single thread at a time (the batcher
 *     is the one generating thread of an adapter; a worker owns its
 *     trainer). eng_model_get_info and the *_info / *_json getters only
 *     read and may run beside anything.
 *   - Never at once: freeing an object while another call uses it;
 *     eng_model_free while an adapter or trainer made on m still lives.
 *   - Seeded constructions (eng_model_create, trainer creation) take an
 *     internal lock, so concurrent ones still get the weights their seed
 *     promises.
 *   - Intra-op threads are per calling OS thread (eng_set_threads): set
 *     them on each thread that calls the engine. Callbacks (progress) run
 *     on the calling thread.
 */
#ifndef CODID_ENGINE_H
#define CODID_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum eng_status {
    ENG_OK = 0,
    ENG_EINVAL = -1,     /* a bad argument or parameter */
    ENG_EIO = -2,        /* a file could not be read or written */
    ENG_EFORMAT = -3,    /* a file or config is malformed */
    ENG_ENOMEM = -4,     /* out of memory (host or device) */
    ENG_EMISMATCH = -5,  /* weights or adapter do not fit this model */
    ENG_ECANCELLED = -6, /* stopped by the caller's cancel flag */
    ENG_EINTERNAL = -7   /* torch raised something unexpected */
} eng_status;

typedef struct eng_error {
    int code;
    char msg[256];
} eng_error;

/* libuv style: a text for each code (no *_COUNT: codes are negative) */
const char *eng_strerror(int code);

/* ---- context: device and threads ------------------------------------- */

typedef struct eng_ctx eng_ctx;

typedef enum eng_device_kind {
    ENG_DEVICE_AUTO = 0, /* CUDA when the libtorch build and machine have it */
    ENG_DEVICE_CPU = 1,
    ENG_DEVICE_CUDA = 2,
    ENG_DEVICE_COUNT
} eng_device_kind;

/* "auto", "cpu", "cuda" */
const char *eng_device_kind_name(eng_device_kind k);
int eng_device_kind_from_name(const char *name, eng_device_kind *out);

typedef struct eng_ctx_params {
    eng_device_kind device;
    int threads; /* intra-op threads for the calling thread; 0: leave as is */
} eng_ctx_params;

void eng_ctx_params_init(eng_ctx_params *p);
int eng_ctx_create(const eng_ctx_params *p, eng_ctx **out, eng_error *err);
/* "cpu" or "cuda:0" */
const char *eng_ctx_device_name(const eng_ctx *ctx);
void eng_ctx_free(eng_ctx *ctx);

/* Intra-op threads of the calling OS thread (torch's pool is per thread when
 * built with OpenMP), so generation and training can be budgeted apart. */
void eng_set_threads(int threads);
int eng_get_threads(void);

/* ---- the frozen base model -------------------------------------------- */

typedef struct eng_model eng_model;
typedef struct eng_adapter eng_adapter; /* below, 'adapters' */

typedef enum eng_prediction { ENG_PRED_EPSILON = 0, ENG_PRED_V = 1, ENG_PRED_COUNT } eng_prediction;

/* diffusers' prediction_type: "epsilon", "v_prediction" */
const char *eng_prediction_name(eng_prediction p);
/* Also takes "v", the spelling job specs stored before v_prediction was the
 * only one may hold (their rows are parsed again when a job resumes). */
int eng_prediction_from_name(const char *name, eng_prediction *out);

typedef struct eng_model_info {
    int in_channels;
    int out_channels;
    int sample_size;
    int64_t parameters;
    int64_t memory_bytes;      /* weights resident on the device */
    int trained;               /* 0: random weights (labelled so by the API) */
    eng_prediction prediction; /* from scheduler_config.json */
    int train_timesteps;
    char hash[17]; /* content hash of the weights, hex */
    char name[64]; /* the folder's base name, or "random" when created */
} eng_model_info;

/* Load a diffusers folder: config.json, diffusion_pytorch_model.safetensors,
 * and scheduler_config.json (optional; DDPM linear, epsilon when absent).
 * Every key must be consumed and every parameter found: a missing or an
 * unexpected key is ENG_EMISMATCH naming it. */
int eng_model_load(eng_ctx *ctx, const char *dir, eng_model **out, eng_error *err);

/* A model of the given UNet2DModel config (JSON text) with seeded random
 * weights; scheduler_json may be NULL for the default schedule. */
int eng_model_create(eng_ctx *ctx, const char *config_json, const char *scheduler_json, uint64_t seed, eng_model **out,
                     eng_error *err);

/* Write the folder layout eng_model_load reads. fp16: store weights as F16. */
int eng_model_save(eng_model *m, const char *dir, int fp16, eng_error *err);

void eng_model_get_info(const eng_model *m, eng_model_info *out);
/* config.json as loaded (owned by the model) */
const char *eng_model_config_json(const eng_model *m);
void eng_model_free(eng_model *m);

/* One UNet evaluation: x is (n, in_channels, h, w) float32, timestep one
 * value for the whole batch; out receives (n, out_channels, h, w). */
int eng_model_forward(eng_model *m, const float *x, int n, int h, int w, float timestep, float *out, eng_error *err);

/* diffusers' positional timestep embedding as the UNet computes it (for
 * checks against other implementations): out is n x dim. */
int eng_timestep_embedding(const float *t, int n, int dim, int flip_sin_to_cos, float freq_shift, float *out,
                           eng_error *err);

/* ---- images ------------------------------------------------------------ */

typedef struct eng_image {
    int width, height, channels; /* channels 1, 3 or 4 */
    uint8_t *data;               /* height * width * channels bytes */
} eng_image;

/* A batch of same-sized images stored contiguously: n * h * w * c bytes. */
typedef struct eng_images {
    int n, height, width, channels;
    const uint8_t *data;
} eng_images;

/* ---- sampling ---------------------------------------------------------- */

typedef enum eng_sampler {
    ENG_SAMPLER_AUTO = 0, /* CoDi for distilled adapters, DDIM otherwise */
    ENG_SAMPLER_DDIM = 1,
    ENG_SAMPLER_CODI = 2,
    ENG_SAMPLER_COUNT
} eng_sampler;

/* "auto", "ddim", "codi" */
const char *eng_sampler_name(eng_sampler s);
int eng_sampler_from_name(const char *name, eng_sampler *out);

typedef struct eng_gen_params {
    int n;          /* images to produce */
    int steps;      /* sampling steps */
    uint64_t seed;  /* image i uses seed + i: independent of the batch */
    float eta;      /* DDIM eta (0: deterministic) */
    int stochastic; /* CoDi: fresh noise between steps */
    int clamp;      /* clamp x0 to [-1, 1] at every step (default 1) */
    eng_sampler sampler;
    /* progress: called after each step; return non-zero to cancel */
    int (*progress)(int step, int steps, void *user);
    void *user;
} eng_gen_params;

void eng_gen_params_init(eng_gen_params *p);

#define ENG_CODI_DEFAULT_STEPS    4  /* CODI.md: 4-step CoDi is the paper's figure */
#define ENG_DDIM_DEFAULT_STEPS    10 /* generation without a distilled adapter */
#define ENG_DDIM_EVALUATION_STEPS 50 /* evaluation of DDIM: the paper's 50-step reference */

/* The sampling steps to use when a caller was given none: a distilled
 * adapter (a NULL a: the base) samples with CoDi in ENG_CODI_DEFAULT_STEPS
 * (at most its N); otherwise DDIM, in ENG_DDIM_DEFAULT_STEPS to generate
 * and ENG_DDIM_EVALUATION_STEPS when evaluating (evaluation non-zero). */
int eng_default_steps(const eng_model *m, const eng_adapter *a, int evaluation);

/* Sample p->n images. cond: NULL for unconditional sampling (adapter NULL),
 * else one condition image per output (p->n of them) already at the model's
 * size, as the adapter's task expects. out: caller-provided array of p->n
 * images whose data the engine allocates (free with eng_image_free). */
int eng_generate(eng_model *m, eng_adapter *a, const eng_gen_params *p, const eng_image *cond, eng_image *out,
                 eng_error *err);

void eng_image_free(eng_image *img);

/* ---- tasks: condition builders ---------------------------------------- */

typedef enum eng_task_kind {
    ENG_TASK_NONE = 0,
    ENG_TASK_SR = 1,
    ENG_TASK_INPAINT = 2,
    ENG_TASK_COLORIZE = 3,
    ENG_TASK_EDGES = 4,
    ENG_TASK_DEBLUR = 5,
    ENG_TASK_DENOISE = 6,
    ENG_TASK_COUNT
} eng_task_kind;

const char *eng_task_name(eng_task_kind k);
/* ENG_OK and *out set, or ENG_EINVAL for an unknown name ("none" included:
 * no adapter has that task) */
int eng_task_from_name(const char *name, eng_task_kind *out);

typedef struct eng_task_params {
    eng_task_kind kind;
    int factor;      /* sr: 2, 4 or 8 */
    int canny;       /* edges: 1 Canny, 0 Sobel */
    float max_sigma; /* deblur: blur sigma drawn in [0.5, max_sigma] */
    float max_noise; /* denoise: noise std drawn in [0.02, max_noise] (in [-1,1] units) */
} eng_task_params;

void eng_task_params_init(eng_task_params *p, eng_task_kind kind);
/* Channels of the condition the task makes from a c-channel image. */
int eng_task_cond_channels(const eng_task_params *p, int image_channels);

/* Build the condition of each image of `in` (seeded: the same seed gives the
 * same masks, blur radii and noise). cond_out receives
 * in->n * h * w * eng_task_cond_channels() bytes. */
int eng_task_apply(const eng_task_params *p, const eng_images *in, uint64_t seed, uint8_t *cond_out, eng_error *err);

/* Conditions from a client's image (generate's `preprocess`): built here
 * and only here, by the code that builds the training conditions, so that
 * what is served is what the adapter was trained on. */
typedef enum eng_preprocess {
    ENG_PRE_NONE = 0,  /* the image is the condition; inpaint: image + mask */
    ENG_PRE_CANNY = 1, /* the edges task's Canny map of the image */
    ENG_PRE_SOBEL = 2, /* the edges task's Sobel map */
    ENG_PRE_GRAY = 3,  /* luminance as the colorize task computes it */
    ENG_PRE_TASK = 4,  /* the adapter's own seeded degradation */
    ENG_PRE_COUNT
} eng_preprocess;

/* "none", "canny", "sobel", "gray", "task" */
const char *eng_preprocess_name(eng_preprocess p);
/* ENG_OK and *out set, or ENG_EINVAL for an unknown name */
int eng_preprocess_from_name(const char *name, eng_preprocess *out);
/* Channels of the condition `pre` makes for an adapter of task p from
 * c-channel images (compare with eng_task_cond_channels to validate). */
int eng_preprocess_channels(const eng_task_params *p, eng_preprocess pre, int image_channels);

/* The condition of each image of `in` for an adapter of task p, as `pre`
 * builds it: cond_out receives in->n * h * w * eng_preprocess_channels()
 * bytes. ENG_PRE_NONE copies the images, except for inpaint, where mask
 * (in->n * h * w bytes; >= 128 marks a pixel to fill) makes the layout of
 * the training condition: the image with the hole zeroed, then the mask.
 * mask is read for that case only (NULL otherwise). ENG_PRE_TASK is
 * eng_task_apply with seed. */
int eng_preprocess_apply(const eng_task_params *p, eng_preprocess pre, const eng_images *in, const uint8_t *mask,
                         uint64_t seed, uint8_t *cond_out, eng_error *err);

/* The task's plain non-diffusion reference (CODI.md 'The baselines') made
 * from its conditions (c-channel images, c = eng_task_cond_channels of
 * out_channels): the sr condition itself (bicubic), the hole filled with
 * the mean of the known pixels, luminance as grey, the degraded image for
 * deblur and denoise. out receives cond->n images of out_channels.
 * ENG_EINVAL for edges, which have none. */
int eng_task_reference(const eng_task_params *p, const eng_images *cond, int out_channels, uint8_t *out,
                       eng_error *err);

/* ---- adapters --------------------------------------------------------- */

typedef enum eng_adapter_kind { ENG_ADAPTER_CONTROLNET = 0, ENG_ADAPTER_LITE = 1, ENG_ADAPTER_COUNT } eng_adapter_kind;

/* "controlnet", "lite" */
const char *eng_adapter_kind_name(eng_adapter_kind k);
int eng_adapter_kind_from_name(const char *name, eng_adapter_kind *out);

typedef struct eng_adapter_info {
    eng_adapter_kind kind;
    eng_task_params task;
    int distilled; /* 1: CoDi/cm2 (K-step sampler), 0: teacher (DDIM) */
    int n_grid;    /* N of the CoDi grid */
    int64_t parameters;
    int64_t memory_bytes;
    char base_hash[17];
} eng_adapter_info;

/* Load an adapter file onto base m; refused (ENG_EMISMATCH) when the file
 * names another base. */
int eng_adapter_load(eng_model *m, const char *path, eng_adapter **out, eng_error *err);
/* What an adapter file says of itself, read without a base (registering a
 * file, say): *out as eng_adapter_get_info would fill it, parameters and
 * memory_bytes 0 (known once loaded). ENG_EFORMAT for a file that is no
 * codid adapter. metadata_json (may be NULL) receives the file's codid.*
 * keys as a JSON object text without the prefix, values that hold JSON
 * objects parsed (the recipe, the evaluation figures...); free() it. */
int eng_adapter_probe(const char *path, eng_adapter_info *out, char **metadata_json, eng_error *err);
void eng_adapter_get_info(const eng_adapter *a, eng_adapter_info *out);
/* the file's __metadata__ as a JSON object text (owned by the adapter) */
const char *eng_adapter_metadata_json(const eng_adapter *a);
void eng_adapter_free(eng_adapter *a);

/* ---- training ---------------------------------------------------------- */

typedef struct eng_trainer eng_trainer;

typedef enum eng_train_kind {
    ENG_TRAIN_PRETRAIN = 0, /* unconditional DDPM loss on the whole UNet */
    ENG_TRAIN_DISTILL = 1,  /* CoDi, single stage, adapter only */
    ENG_TRAIN_TEACHER = 2,  /* plain diffusion loss, adapter only */
    ENG_TRAIN_CM2 = 3,      /* consistency distillation from a teacher adapter */
    ENG_TRAIN_COUNT
} eng_train_kind;

/* "pretrain", "distill", "teacher", "cm2" */
const char *eng_train_kind_name(eng_train_kind k);
int eng_train_kind_from_name(const char *name, eng_train_kind *out);

/* CoDi's options (CODI.md 'One training step of CoDi'). */
typedef enum eng_ode_model {
    ENG_ODE_BASE = 0, /* step 4: the frozen unconditional base ("base") */
    ENG_ODE_EMA = 1,  /* the EMA conditional model ("ema") */
    ENG_ODE_COUNT
} eng_ode_model;
const char *eng_ode_model_name(eng_ode_model v);
int eng_ode_model_from_name(const char *name, eng_ode_model *out);

typedef enum eng_consistency_space {
    ENG_CONSISTENCY_X = 0,   /* step 7: compare clean images ("x") */
    ENG_CONSISTENCY_EPS = 1, /* compare the implied noises ("eps") */
    ENG_CONSISTENCY_COUNT
} eng_consistency_space;
const char *eng_consistency_space_name(eng_consistency_space v);
int eng_consistency_space_from_name(const char *name, eng_consistency_space *out);

typedef enum eng_loss_weight {
    ENG_LOSS_WEIGHT_NONE = 0,      /* "none" */
    ENG_LOSS_WEIGHT_SNR_TRUNC = 1, /* step 7: min(1, SNR(t)) on both terms ("snr_trunc") */
    ENG_LOSS_WEIGHT_COUNT
} eng_loss_weight;
const char *eng_loss_weight_name(eng_loss_weight v);
int eng_loss_weight_from_name(const char *name, eng_loss_weight *out);

typedef struct eng_train_params {
    eng_train_kind kind;
    int total_steps;
    int batch_size;
    float lr;
    int warmup_steps;
    float weight_decay;
    float grad_clip; /* global norm; 0: off */
    float ema_decay;
    uint64_t seed;
    int hflip; /* random horizontal flips of training images */
    /* pretrain */
    eng_prediction prediction;
    /* adapters */
    eng_adapter_kind adapter_kind;
    eng_task_params task;
    /* CoDi (CODI.md) */
    int n_grid;                        /* N, default 50 */
    float lambda;                      /* weight of the data term, default 1 */
    eng_ode_model ode_model;           /* step 4 */
    eng_consistency_space consistency; /* step 7 */
    int shared_t;                      /* step 2: one t per batch */
    eng_loss_weight loss_weight;       /* step 7 */
    const char *teacher_path;          /* cm2: the teacher adapter file */
} eng_train_params;

void eng_train_params_init(eng_train_params *p, eng_train_kind kind);

typedef struct eng_step_stats {
    int step; /* optimizer steps done */
    float loss;
    float lr;
    float grad_norm;
} eng_step_stats;

/* Pretraining: a new model from config_json (and scheduler_json, may be NULL)
 * initialised from p->seed. data: the training images, borrowed for the
 * trainer's lifetime (the caller may mmap them). */
int eng_trainer_create_pretrain(eng_ctx *ctx, const char *config_json, const char *scheduler_json,
                                const eng_train_params *p, const eng_images *data, eng_trainer **out, eng_error *err);

/* Adapter training on frozen base m (borrowed; must outlive the trainer). */
int eng_trainer_create_adapter(eng_model *m, const eng_train_params *p, const eng_images *data, eng_trainer **out,
                               eng_error *err);

int eng_trainer_step(eng_trainer *t, eng_step_stats *stats, eng_error *err);
int eng_trainer_steps_done(const eng_trainer *t);

/* A checkpoint holds weights, EMA, optimizer moments, step and RNG state, so
 * that load + steps continue exactly as if uninterrupted. Written to a
 * temporary name, fsynced and renamed. */
int eng_trainer_save_checkpoint(eng_trainer *t, const char *path, eng_error *err);
int eng_trainer_load_checkpoint(eng_trainer *t, const char *path, eng_error *err);

/* The result: pretrain writes a model folder (EMA weights, fp16 when asked);
 * adapter trainers write one adapter file with extra_metadata_json (an
 * object, may be NULL) merged into its metadata. */
int eng_trainer_export(eng_trainer *t, const char *path, int fp16, const char *extra_metadata_json, eng_error *err);
void eng_trainer_free(eng_trainer *t);

/* ==== metrics: the evaluation classifier, FID-proxy, PSNR, SSIM ======== */
/* (engine/metrics.cpp, engine/psnr_ssim.c; CODI.md 'Measuring quality') */

/* A small CIFAR-10-style CNN (GroupNorm, no dropout, so inference is
 * deterministic): its global-average-pooled penultimate features feed the
 * FID-proxy. Folder layout: config.json + model.safetensors. */
typedef struct eng_classifier eng_classifier;

typedef struct eng_classifier_info {
    int image_size; /* square inputs of this side */
    int channels;
    int num_classes;
    int feature_dim; /* D of eng_classifier_features */
    int64_t parameters;
} eng_classifier_info;

/* config_json, e.g. {"image_size":32,"in_channels":3,"num_classes":10,
 * "widths":[48,96,192],"norm_num_groups":8,"stem_stride":2}; seeded random
 * weights. */
int eng_classifier_create(eng_ctx *ctx, const char *config_json, uint64_t seed, eng_classifier **out, eng_error *err);
int eng_classifier_load(eng_ctx *ctx, const char *dir, eng_classifier **out, eng_error *err);
/* Writes dir/config.json and dir/model.safetensors (F16 when fp16);
 * metadata_json (an object of strings, may be NULL) goes into the file's
 * __metadata__. */
int eng_classifier_save(eng_classifier *c, const char *dir, int fp16, const char *metadata_json, eng_error *err);
void eng_classifier_get_info(const eng_classifier *c, eng_classifier_info *out);
void eng_classifier_free(eng_classifier *c);

typedef struct eng_classifier_train_params {
    int total_steps;
    int batch_size;
    float lr; /* peak AdamW rate: linear warm-up, cosine to 0 */
    int warmup_steps;
    float weight_decay; /* decoupled, on kernels and matrices only */
    float label_smoothing;
    uint64_t seed;
    /* called after each step; return non-zero to cancel (ENG_ECANCELLED) */
    int (*progress)(int step, int steps, float loss, float lr, void *user);
    void *user;
} eng_classifier_train_params;

void eng_classifier_train_params_init(eng_classifier_train_params *p);
/* Trains c in place on data (labels: one byte per image) with random crops
 * (padding 4, reflected) and horizontal flips. */
int eng_classifier_train(eng_classifier *c, const eng_classifier_train_params *p, const eng_images *data,
                         const uint8_t *labels, eng_error *err);

/* Penultimate features of each image: feats receives imgs->n x feature_dim
 * floats. Images must be image_size square with the classifier's channels. */
int eng_classifier_features(eng_classifier *c, const eng_images *imgs, float *feats, eng_error *err);
/* Fraction of imgs whose predicted class equals labels[i]. */
int eng_classifier_accuracy(eng_classifier *c, const eng_images *imgs, const uint8_t *labels, double *out,
                            eng_error *err);

/* Gaussian fit of n >= 2 feature rows (n x d floats): mean mu (d) and the
 * unbiased covariance cov (d x d, row-major), in double precision. */
int eng_feature_stats(const float *feats, int n, int d, double *mu, double *cov, eng_error *err);
/* Frechet distance between N(mu1, s1) and N(mu2, s2) (d-dimensional,
 * covariances row-major and symmetric positive semi-definite):
 * ||mu1 - mu2||^2 + Tr(s1 + s2 - 2 (s1 s2)^(1/2)), never below 0. */
int eng_frechet_distance(const double *mu1, const double *s1, const double *mu2, const double *s2, int d, double *out,
                         eng_error *err);
/* FID-proxy: the Frechet distance between the Gaussian fits of the
 * classifier features of two image sets (each of at least 2 images). Like
 * FID it is biased upwards for small sets: compare figures of equal n. */
int eng_fid_proxy(eng_classifier *c, const eng_images *a, const eng_images *b, double *out, eng_error *err);

/* PSNR of 8-bit images, in dB: 10 log10(255^2 / MSE) per image over all its
 * samples, averaged over the images. An image pair with MSE 0 (identical)
 * counts as ENG_PSNR_CAP_DB, so the figure stays finite. */
#define ENG_PSNR_CAP_DB 100.0
int eng_psnr(const eng_images *a, const eng_images *b, double *out, eng_error *err);
/* SSIM (Wang et al. 2004): 11x11 Gaussian window of sigma 1.5, K1 0.01,
 * K2 0.03, L 255, over the valid window positions of each channel; channels
 * averaged, then images. Images need sides of at least 11. */
int eng_ssim(const eng_images *a, const eng_images *b, double *out, eng_error *err);

/* ==== end of metrics ===================================================== */

#ifdef __cplusplus
}
#endif

#endif
