/* Random search: a shifted Sobol sequence for the first candidates, then
 * independent uniform draws, both mapped onto the space with
 * hpo_study_values_from_unit(). */
#include "tuner_impl.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_qrng.h>

#include "hpo/error.h"

/* GSL's Sobol generator has direction numbers for 40 dimensions
 * (SOBOL_MAX_DIMENSION in GSL's qrng/sobol.c). gsl_qrng_alloc() of GSL
 * 2.7.1 does not reject more; the state is then left uninitialized. */
#define SOBOL_MAX_DIMENSION 40

/* The Sobol design covers the first max(INITIAL_MIN, 2 d) candidates. */
#define INITIAL_MIN 10

typedef struct {
    gsl_qrng *sobol;   /* NULL when d is 0 or above SOBOL_MAX_DIMENSION */
    double *shift;     /* random shift of the Sobol points, one per dimension */
    double *u;         /* the current point */
    int n_initial;     /* candidates taken from the Sobol sequence */
    int n_drawn;       /* candidates drawn so far */
} random_state;

static void random_destroy(hpo_tuner *t)
{
    random_state *s = t->state;
    if (s == NULL)
        return;
    if (s->sobol != NULL)
        gsl_qrng_free(s->sobol);
    free(s->shift);
    free(s->u);
    free(s);
    t->state = NULL;
}

static int random_init(hpo_tuner *t, char *err, size_t errlen)
{
    int d = hpo_study_param_count(t->study);
    random_state *s = calloc(1, sizeof *s);

    t->state = s;
    if (s == NULL)
        return hpo_error(err, errlen, "tuner random: out of memory");
    s->shift = calloc(d > 0 ? (size_t)d : 1, sizeof *s->shift);
    s->u = calloc(d > 0 ? (size_t)d : 1, sizeof *s->u);
    if (s->shift == NULL || s->u == NULL)
        return hpo_error(err, errlen, "tuner random: out of memory");

    s->n_initial = 2 * d > INITIAL_MIN ? 2 * d : INITIAL_MIN;
    if (d > 0 && d <= SOBOL_MAX_DIMENSION) {
        s->sobol = gsl_qrng_alloc(gsl_qrng_sobol, (unsigned int)d);
        if (s->sobol == NULL)
            return hpo_error(err, errlen, "tuner random: out of memory for a Sobol generator");
    }

    /* A random shift modulo 1 (Cranley-Patterson rotation) keeps the
     * sequence's low discrepancy and makes the design depend on the seed. */
    for (int i = 0; i < d; i++)
        s->shift[i] = gsl_rng_uniform(t->rng);
    return 0;
}

static int random_candidate(hpo_tuner *t, cJSON **values_out, char *err, size_t errlen)
{
    random_state *s = t->state;
    int d = hpo_study_param_count(t->study);

    if (s->sobol != NULL && s->n_drawn < s->n_initial) {
        if (gsl_qrng_get(s->sobol, s->u) != 0)
            return hpo_error(err, errlen, "tuner random: the Sobol generator failed");
        for (int i = 0; i < d; i++)
            s->u[i] = fmod(s->u[i] + s->shift[i], 1.0);
    } else {
        for (int i = 0; i < d; i++)
            s->u[i] = gsl_rng_uniform(t->rng);
    }
    s->n_drawn++;
    return hpo_study_values_from_unit(t->study, s->u, values_out, err, errlen);
}

const hpo_tuner_ops hpo_tuner_random_ops = {
    .name = "random",
    .init = random_init,
    .candidate = random_candidate,
    .destroy = random_destroy,
};
