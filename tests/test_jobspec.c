/*
 * test_jobspec.c - jobs/jobspec.c: a job's JSON mapped to engine parameters,
 * and every error naming its field.
 */
#include "engine/engine.h"
#include "jobs/jobspec.h"
#include "tests/jobs_test.h"
#include "tests/test.h"
#include "util/log.h"

/* ---- job specs ------------------------------------------------------------------------- */

TEST(spec_maps_fields_to_engine_params) {
    jobs_spec s;
    char msg[256];
    int rc = jobs_spec_parse("{\"kind\":\"cm2\",\"dataset\":\"cifar\",\"teacher\":7,"
                             "\"task\":{\"name\":\"edges\",\"canny\":true},\"adapter_kind\":\"lite\","
                             "\"steps\":300,\"batch_size\":16,\"lr\":0.0005,\"warmup\":10,"
                             "\"ema_decay\":0.99,\"seed\":42,\"n_grid\":20,\"lambda\":0.5,"
                             "\"ode_model\":\"ema\",\"consistency_space\":\"eps\",\"shared_t\":true,"
                             "\"loss_weight\":\"snr_trunc\",\"name\":\"edges-lite\",\"checkpoint_every\":25}",
                             &s, msg, sizeof msg);
    CHECK_MSG(rc == JOBS_OK, "%s", msg);
    CHECK_EQ_INT(s.kind, JOBS_KIND_CM2);
    CHECK_EQ_INT(s.train.kind, ENG_TRAIN_CM2);
    CHECK_EQ_STR(s.dataset.name, "cifar");
    CHECK_EQ_INT(s.teacher.id, 7);
    CHECK_EQ_INT(s.train.task.kind, ENG_TASK_EDGES);
    CHECK_EQ_INT(s.train.task.canny, 1);
    CHECK_EQ_INT(s.train.adapter_kind, ENG_ADAPTER_LITE);
    CHECK_EQ_INT(s.train.total_steps, 300);
    CHECK_EQ_INT(s.train.batch_size, 16);
    CHECK_NEAR(s.train.lr, 0.0005, 1e-9);
    CHECK_EQ_INT(s.train.warmup_steps, 10);
    CHECK_NEAR(s.train.ema_decay, 0.99, 1e-7);
    CHECK_EQ_INT(s.train.seed, 42);
    CHECK_EQ_INT(s.train.n_grid, 20);
    CHECK_NEAR(s.train.lambda, 0.5, 1e-9);
    CHECK_EQ_INT(s.train.ode_model, ENG_ODE_EMA);
    CHECK_EQ_INT(s.train.consistency, ENG_CONSISTENCY_EPS);
    CHECK_EQ_INT(s.train.shared_t, 1);
    CHECK_EQ_INT(s.train.loss_weight, ENG_LOSS_WEIGHT_SNR_TRUNC);
    CHECK_EQ_STR(s.name, "edges-lite");
    CHECK_EQ_INT(s.checkpoint_every, 25);
    CHECK_EQ_INT(jobs_spec_total(&s), 300);
    jobs_spec_free(&s);

    CHECK(jobs_spec_parse("{\"kind\":\"distill\",\"dataset\":\"12\",\"task\":{\"name\":\"sr\",\"factor\":8}}", &s, msg,
                          sizeof msg) == JOBS_OK);
    CHECK_EQ_INT(s.dataset.id, 12);
    CHECK_EQ_INT(s.train.task.factor, 8);
    CHECK_EQ_INT(s.checkpoint_every, JOBS_CHECKPOINT_EVERY_DEFAULT);
    CHECK_EQ_INT(s.train.adapter_kind, ENG_ADAPTER_CONTROLNET);
    jobs_spec_free(&s);

    CHECK(jobs_spec_parse("{\"kind\":\"pretrain\",\"dataset\":\"d\",\"config\":{\"sample_size\":8},"
                          "\"prediction\":\"epsilon\"}",
                          &s, msg, sizeof msg) == JOBS_OK);
    CHECK_EQ_STR(s.model_config, "{\"sample_size\":8}");
    CHECK_EQ_INT(s.train.prediction, ENG_PRED_EPSILON);
    jobs_spec_free(&s);
    /* diffusers' spelling, and "v", which rows stored by older versions hold */
    const char *vs[] = {"{\"kind\":\"pretrain\",\"dataset\":\"d\",\"prediction\":\"v_prediction\"}",
                        "{\"kind\":\"pretrain\",\"dataset\":\"d\",\"prediction\":\"v\"}"};
    for (int i = 0; i < 2; i++) {
        CHECK_MSG(jobs_spec_parse(vs[i], &s, msg, sizeof msg) == JOBS_OK, "%s", msg);
        CHECK_EQ_INT(s.train.prediction, ENG_PRED_V);
        jobs_spec_free(&s);
    }
    CHECK(jobs_spec_parse("{\"kind\":\"pretrain\",\"dataset\":\"d\",\"prediction\":\"x\"}", &s, msg, sizeof msg) ==
          JOBS_EINVAL);
    CHECK_MSG(strstr(msg, "epsilon, v_prediction"), "%s", msg);

    CHECK(jobs_spec_parse("{\"kind\":\"evaluate\",\"dataset\":\"d\",\"adapter\":\"a\",\"n\":5}", &s, msg, sizeof msg) ==
          JOBS_OK);
    CHECK_EQ_INT(jobs_spec_total(&s), 5);
    CHECK_EQ_INT(s.sample_steps, 0);
    jobs_spec_free(&s);
}

TEST(spec_errors_name_the_field) {
    static const struct {
        const char *json, *expect;
    } cases[] = {
        {"[1]", "JSON object"},
        {"{\"dataset\":\"d\"}", "'kind'"},
        {"{\"kind\":\"train\",\"dataset\":\"d\"}", "'kind' must be one of pretrain"},
        {"{\"kind\":\"distill\",\"task\":{\"name\":\"sr\"}}", "'dataset' is required"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\"}", "'task' is required"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"zoom\"}}", "'task.name'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\",\"factor\":3}}", "'task.factor'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\",\"canny\":1}}", "'task.canny'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"steps\":0}", "'steps'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"steps\":1.5}", "'steps'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"batch_size\":5000}", "'batch_size'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"lr\":0}", "'lr'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"lr\":\"fast\"}", "'lr'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"ema_decay\":1}", "'ema_decay'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"seed\":-1}", "'seed'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"ode_model\":\"x\"}", "'ode_model'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"consistency_space\":1}",
         "'consistency_space'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"loss_weight\":\"snr\"}",
         "'loss_weight'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"shared_t\":\"yes\"}", "'shared_t'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"adapter_kind\":\"big\"}",
         "'adapter_kind'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"name\":\"../x\"}", "'name'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"checkpoint_every\":0}",
         "'checkpoint_every'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"teacher\":\"t\"}",
         "'teacher' does not apply to a distill job"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"stepz\":5}", "'stepz' is unknown"},
        {"{\"kind\":\"distill\",\"dataset\":\"../etc\",\"task\":{\"name\":\"sr\"}}", "'dataset'"},
        {"{\"kind\":\"cm2\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"}}", "'teacher' is required"},
        {"{\"kind\":\"pretrain\",\"dataset\":\"d\",\"config\":[1]}", "'config'"},
        {"{\"kind\":\"pretrain\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"}}", "'task' does not apply"},
        {"{\"kind\":\"evaluate\",\"dataset\":\"d\"}", "'adapter' is required"},
        {"{\"kind\":\"evaluate\",\"dataset\":\"d\",\"adapter\":\"a\",\"steps\":5}", "'steps' does not apply"},
        {"{\"kind\":\"evaluate\",\"dataset\":\"d\",\"adapter\":\"a\",\"n\":0}", "'n'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jobs_spec s;
        char msg[256] = "";
        int rc = jobs_spec_parse(cases[i].json, &s, msg, sizeof msg);
        CHECK_MSG(rc == JOBS_EINVAL, "%s: accepted", cases[i].json);
        CHECK_MSG(strstr(msg, cases[i].expect), "%s: message '%s' lacks '%s'", cases[i].json, msg, cases[i].expect);
    }
}

int main(void) {
    util_log_set_level(UTIL_LOG_WARN);
    RUN(spec_maps_fields_to_engine_params);
    RUN(spec_errors_name_the_field);
    return TEST_SUMMARY();
}
