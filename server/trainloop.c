#include "server/trainloop.h"
#include "util/clock.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig) {
    (void)sig;
    stop_requested = 1;
}

static int save_checkpoint(eng_trainer *t, const char *path) {
    eng_error err;
    if (eng_trainer_save_checkpoint(t, path, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int srv_train_loop(eng_trainer *t, const srv_train_opts *o) {
    eng_error err;
    FILE *log = NULL;
    int status = 1;
    if (o->checkpoint && access(o->checkpoint, F_OK) == 0) {
        if (eng_trainer_load_checkpoint(t, o->checkpoint, &err) != ENG_OK) {
            fprintf(stderr, "codid: %s\n", err.msg);
            return 1;
        }
        fprintf(stderr, "codid: resumed from %s at step %d\n", o->checkpoint, eng_trainer_steps_done(t));
    }
    if (o->log_path) {
        int fresh = access(o->log_path, F_OK) != 0;
        log = fopen(o->log_path, "a");
        if (!log) {
            fprintf(stderr, "codid: cannot open %s: %s\n", o->log_path, strerror(errno));
            return 1;
        }
        if (fresh) fprintf(log, "step,loss,lr,grad_norm,seconds\n");
    }
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    int every = o->checkpoint_every > 0 ? o->checkpoint_every : 500;
    int log_every = o->log_every > 0 ? o->log_every : 50;
    double start = util_mono_s(), smooth = NAN;
    int first = eng_trainer_steps_done(t);
    while (eng_trainer_steps_done(t) < o->total_steps) {
        eng_step_stats st;
        if (eng_trainer_step(t, &st, &err) != ENG_OK) {
            fprintf(stderr, "codid: %s\n", err.msg);
            goto done;
        }
        smooth = isnan(smooth) ? st.loss : 0.98 * smooth + 0.02 * st.loss;
        if (log) fprintf(log, "%d,%.6f,%.6g,%.4f,%.1f\n", st.step, st.loss, st.lr, st.grad_norm, util_mono_s() - start);
        if (st.step % log_every == 0 || st.step == o->total_steps) {
            double rate = (st.step - first) / (util_mono_s() - start);
            fprintf(stderr, "step %d/%d loss %.4f (smoothed %.4f) lr %.2g %.2f it/s eta %.0f s\n", st.step,
                    o->total_steps, st.loss, smooth, st.lr, rate, (o->total_steps - st.step) / rate);
            if (log) fflush(log);
        }
        if (o->checkpoint && (st.step % every == 0 || stop_requested) && save_checkpoint(t, o->checkpoint)) goto done;
        if (stop_requested) {
            fprintf(stderr, "codid: stopped at step %d; the same command resumes\n", st.step);
            status = 3;
            goto done;
        }
    }
    if (eng_trainer_export(t, o->out, o->fp16, o->extra_metadata_json, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        goto done;
    }
    if (o->checkpoint && save_checkpoint(t, o->checkpoint)) goto done;
    fprintf(stderr, "codid: wrote %s after %d steps\n", o->out, eng_trainer_steps_done(t));
    status = 0;
done:
    if (log) fclose(log);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    return status;
}
