/*
 * commands.h - the subcommands of the codid binary besides serving.
 *
 * Each takes main()'s argc/argv from the subcommand's name on (argv[0] is
 * "dataset", say), prints its results on stdout and its errors on stderr,
 * and returns the process exit status: 0 success, 1 failure, 2 bad usage.
 */
#ifndef CODID_SERVER_COMMANDS_H
#define CODID_SERVER_COMMANDS_H

/* codid dataset import|grid ...: builds dataset files from CIFAR-10,
 * Fashion-MNIST or a PNG folder, and draws a PNG grid of a dataset's first
 * images for eyeballing. */
int srv_cmd_dataset(int argc, char **argv);

/* codid forward: one UNet evaluation of the tensor `sample` of a safetensors
 * file, written as `sample` to another (checks a checkpoint against other
 * implementations). */
int srv_cmd_forward(int argc, char **argv);

/* codid pretrain: unconditional pretraining of a base model on a dataset
 * file, with checkpoints, exact resume and a loss log. */
int srv_cmd_pretrain(int argc, char **argv);

/* codid plot: a PNG of a training loss log (raw and smoothed). */
int srv_cmd_plot(int argc, char **argv);

/* codid sample: a PNG grid of unconditional DDIM samples of a model. */
int srv_cmd_sample(int argc, char **argv);

/* codid eval SUBCOMMAND: trains the evaluation classifier; measures accuracy,
 * FID-proxy (of image sets or of a model's samples), PSNR and SSIM. */
int srv_cmd_eval(int argc, char **argv);

/* codid adapter train|eval: train an adapter from a job spec without the
 * daemon; score adapters on held-out images (CODI.md's protocol). */
int srv_cmd_adapter(int argc, char **argv);
int srv_cmd_adapter_eval(int argc, char **argv);

/* codid jobs submit|list|get|cancel|events|datasets|adapters|add-dataset|
 * add-adapter: the job queue and the registries of a data directory,
 * without HTTP. */
int srv_cmd_jobs(int argc, char **argv);

/* codid keys create|list|revoke: the API keys of a data directory (the
 * key is printed once, at creation; the store keeps its SHA-256). */
int srv_cmd_keys(int argc, char **argv);

/* codid config [serve flags]: the effective serve settings and their origin
 * (default, file, env, flag); exit 2 when one is refused. */
int srv_cmd_config(int argc, char **argv);

#endif
