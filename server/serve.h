/*
 * serve.h - "codid serve": the daemon's start-up and shutdown order.
 *
 * Exit status: 0 after a clean stop (SIGTERM or SIGINT), 1 when start-up
 * fails at run time (model, engine), 2 for bad configuration or an address
 * that cannot be bound.
 */
#ifndef CODID_SERVER_SERVE_H
#define CODID_SERVER_SERVE_H

/* The model name that asks for a small randomly initialised UNet instead
 * of a folder. */
#define SRV_MODEL_RANDOM_TINY "random-tiny"

int srv_cmd_serve(int argc, char **argv);

#endif
