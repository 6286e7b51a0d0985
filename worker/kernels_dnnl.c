/* oneDNN kernels: convolutions as oneDNN primitives on NHWC activations,
 * dense layers as dnnl_sgemm. Threads come from OpenMP, which oneDNN uses
 * in Debian's build.
 *
 * Primitives are costly to create, so each (geometry, batch) pair gets its
 * primitives once and keeps them in a cache for the life of the process.
 * Activations stay in our NHWC layout, which oneDNN's AVX-512 kernels take
 * directly. Weights stay in our HWIO layout. At every call they are
 * reordered into the layout each primitive prefers, and weight gradients
 * back, which costs one pass over the weights, small next to the
 * convolution.
 *
 * If oneDNN cannot create a primitive, the call falls back to the BLAS
 * kernels and logs it once per geometry. */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv_direct.h"
#include "hpo/log.h"
#include "kernels.h"
#include "layers.h"

typedef struct {
    dnnl_primitive_t primitive;
    dnnl_memory_t memory;   /* the primitive's own buffer, or NULL when the
                               user layout is already the preferred one */
} reorder;

typedef struct conv_entry {
    hpo_conv_geom g;
    int n;
    bool failed;            /* creation failed: use the BLAS kernels */

    dnnl_primitive_t fwd, bwd_data, bwd_weights;
    dnnl_memory_t src, dst, bias, diff_src, diff_dst, diff_bias;
    dnnl_memory_t user_weights, user_diff_weights;
    reorder weights_fwd, weights_bwd_data, diff_weights;
    reorder src_compute, diff_dst_compute; /* float32 -> bfloat16 copies */

    struct conv_entry *next;
} conv_entry;

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static conv_entry *cache;

static int dnnl_ready(void)
{
    if (engine != NULL)
        return 0;
    /* Profiler hooks (VTune, perf JIT dumps) cost about 2% of a step. */
    dnnl_set_jit_profiling_flags(0);
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        return -1;
    if (dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) != dnnl_success)
        return -1;
    return 0;
}

static dnnl_memory_t memory_new(const dnnl_memory_desc_t *md, bool own)
{
    dnnl_memory_t m = NULL;
    if (dnnl_memory_create(&m, md, engine, own ? DNNL_MEMORY_ALLOCATE : DNNL_MEMORY_NONE) !=
        dnnl_success)
        return NULL;
    return m;
}

/* Prepares a reorder between the user's layout and the preferred one,
 * unless the two are equal. The reorder owns the buffer in the preferred
 * layout. user_is_source says whether the user's memory is the source. */
static int reorder_init(reorder *r, const dnnl_memory_desc_t *user,
                        const dnnl_memory_desc_t *preferred, bool user_is_source)
{
    memset(r, 0, sizeof *r);
    if (dnnl_memory_desc_equal(user, preferred))
        return 0;
    dnnl_primitive_desc_t pd = NULL;
    const dnnl_memory_desc_t *from = user_is_source ? user : preferred;
    const dnnl_memory_desc_t *to = user_is_source ? preferred : user;
    if (dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL) != dnnl_success)
        return -1;
    dnnl_status_t s = dnnl_primitive_create(&r->primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success)
        return -1;
    r->memory = memory_new(preferred, true);
    return r->memory != NULL ? 0 : -1;
}

static void reorder_run(const reorder *r, dnnl_memory_t user, bool user_is_source)
{
    dnnl_exec_arg_t args[2] = {
        {DNNL_ARG_FROM, user_is_source ? user : r->memory},
        {DNNL_ARG_TO, user_is_source ? r->memory : user},
    };
    dnnl_primitive_execute(r->primitive, stream, 2, args);
}

static dnnl_primitive_t primitive_new(dnnl_primitive_desc_t pd)
{
    dnnl_primitive_t p = NULL;
    if (dnnl_primitive_create(&p, pd) != dnnl_success)
        return NULL;
    return p;
}

/* Creates the three convolution primitives of one geometry and batch. */
static int conv_entry_init(conv_entry *e)
{
    const hpo_conv_geom *g = &e->g;
    dnnl_dims_t src_dims = {e->n, g->in_c, g->in_h, g->in_w};
    dnnl_dims_t dst_dims = {e->n, g->out_c, g->out_h, g->out_w};
    dnnl_dims_t w_dims = {g->out_c, g->in_c, g->kernel, g->kernel};
    dnnl_dims_t b_dims = {g->out_c};
    dnnl_dims_t strides = {g->stride, g->stride};
    dnnl_dims_t pad_l = {g->pad_top, g->pad_left};
    /* The padding after the last pixel is whatever makes the output size
     * come out: (out - 1) * stride + kernel - in - before, at least 0. */
    dnnl_dims_t pad_r = {
        (g->out_h - 1) * g->stride + g->kernel - g->in_h - g->pad_top,
        (g->out_w - 1) * g->stride + g->kernel - g->in_w - g->pad_left,
    };
    if (pad_r[0] < 0)
        pad_r[0] = 0;
    if (pad_r[1] < 0)
        pad_r[1] = 0;

    /* With bfloat16, the convolution reads bf16 copies of its inputs (src,
     * weights, diff_dst) and writes float32 results (dst, diff_src and the
     * weight gradients), so everything outside the kernels stays float32. */
    dnnl_data_type_t compute = g->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src_md, dst_md, w_any, w_grad_any, w_user, b_md;
    dnnl_memory_desc_t src_c_md, dst_c_md;
    dnnl_memory_desc_init_by_tag(&src_md, 4, src_dims, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_dims, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&src_c_md, 4, src_dims, compute, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&dst_c_md, 4, dst_dims, compute, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(&w_any, 4, w_dims, compute, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&w_grad_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&w_user, 4, w_dims, dnnl_f32, dnnl_hwio);
    dnnl_memory_desc_init_by_tag(&b_md, 1, b_dims, dnnl_f32, dnnl_x);

    dnnl_convolution_desc_t fwd_d, bwd_data_d, bwd_w_d;
    dnnl_primitive_desc_t fwd_pd = NULL, bwd_data_pd = NULL, bwd_w_pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t post_ops = NULL;
    int rc = -1;

    /* The activation runs inside the convolution as an eltwise post-op,
     * saving a pass over the output. */
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        goto done;
    if (g->activation == HPO_ACT_RELU || g->activation == HPO_ACT_TANH) {
        if (dnnl_post_ops_create(&post_ops) != dnnl_success ||
            dnnl_post_ops_append_eltwise(post_ops, 1.0f,
                                         g->activation == HPO_ACT_RELU ? dnnl_eltwise_relu
                                                                       : dnnl_eltwise_tanh,
                                         0.0f, 0.0f) != dnnl_success ||
            dnnl_primitive_attr_set_post_ops(attr, post_ops) != dnnl_success)
            goto done;
    }

    if (dnnl_convolution_forward_desc_init(&fwd_d, dnnl_forward_training,
                                           dnnl_convolution_direct, &src_c_md, &w_any, &b_md,
                                           &dst_md, strides, pad_l, pad_r) != dnnl_success ||
        dnnl_primitive_desc_create(&fwd_pd, &fwd_d, attr, engine, NULL) != dnnl_success)
        goto done;
    if (dnnl_convolution_backward_data_desc_init(&bwd_data_d, dnnl_convolution_direct,
                                                 &src_md, &w_any, &dst_c_md, strides, pad_l,
                                                 pad_r) != dnnl_success ||
        dnnl_primitive_desc_create(&bwd_data_pd, &bwd_data_d, NULL, engine, fwd_pd) !=
            dnnl_success)
        goto done;
    if (dnnl_convolution_backward_weights_desc_init(&bwd_w_d, dnnl_convolution_direct,
                                                    &src_c_md, &w_grad_any, &b_md, &dst_c_md,
                                                    strides, pad_l, pad_r) != dnnl_success ||
        dnnl_primitive_desc_create(&bwd_w_pd, &bwd_w_d, NULL, engine, fwd_pd) != dnnl_success)
        goto done;

    e->fwd = primitive_new(fwd_pd);
    e->bwd_data = primitive_new(bwd_data_pd);
    e->bwd_weights = primitive_new(bwd_w_pd);
    e->src = memory_new(&src_md, false);
    e->dst = memory_new(&dst_md, false);
    e->bias = memory_new(&b_md, false);
    e->diff_src = memory_new(&src_md, false);
    e->diff_dst = memory_new(&dst_md, false);
    e->diff_bias = memory_new(&b_md, false);
    e->user_weights = memory_new(&w_user, false);
    e->user_diff_weights = memory_new(&w_user, false);
    if (!e->fwd || !e->bwd_data || !e->bwd_weights || !e->src || !e->dst || !e->bias ||
        !e->diff_src || !e->diff_dst || !e->diff_bias || !e->user_weights ||
        !e->user_diff_weights)
        goto done;

    if (reorder_init(&e->weights_fwd, &w_user,
                     dnnl_primitive_desc_query_md(fwd_pd, dnnl_query_weights_md, 0), true) < 0 ||
        reorder_init(&e->weights_bwd_data, &w_user,
                     dnnl_primitive_desc_query_md(bwd_data_pd, dnnl_query_weights_md, 0),
                     true) < 0 ||
        reorder_init(&e->diff_weights, &w_user,
                     dnnl_primitive_desc_query_md(bwd_w_pd, dnnl_query_diff_weights_md, 0),
                     false) < 0 ||
        reorder_init(&e->src_compute, &src_md, &src_c_md, true) < 0 ||
        reorder_init(&e->diff_dst_compute, &dst_md, &dst_c_md, true) < 0)
        goto done;

    const char *impl = NULL;
    dnnl_primitive_desc_query(fwd_pd, dnnl_query_impl_info_str, 0, &impl);
    hpo_log_debug("oneDNN convolution %dx%dx%d -> %dx%dx%d, kernel %d, batch %d, %s: %s",
                  g->in_h, g->in_w, g->in_c, g->out_h, g->out_w, g->out_c, g->kernel, e->n,
                  g->bf16 ? "bfloat16" : "float32", impl != NULL ? impl : "?");
    rc = 0;

done:
    if (post_ops)
        dnnl_post_ops_destroy(post_ops);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (fwd_pd)
        dnnl_primitive_desc_destroy(fwd_pd);
    if (bwd_data_pd)
        dnnl_primitive_desc_destroy(bwd_data_pd);
    if (bwd_w_pd)
        dnnl_primitive_desc_destroy(bwd_w_pd);
    return rc;
}

/* Returns the cache entry of geometry g and batch n, creating it on first
 * use. NULL means "use the BLAS kernels". */
static conv_entry *conv_entry_get(const hpo_conv_geom *g, int n)
{
    for (conv_entry *e = cache; e != NULL; e = e->next) {
        if (e->n == n && memcmp(&e->g, g, sizeof *g) == 0)
            return e->failed ? NULL : e;
    }
    conv_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->g = *g;
    e->n = n;
    e->next = cache;
    cache = e;
    if (dnnl_ready() < 0 || conv_entry_init(e) < 0) {
        hpo_log_warn("oneDNN: no convolution primitive for %dx%dx%d, kernel %d, stride %d, "
                     "batch %d; using the BLAS kernels for it",
                     g->in_h, g->in_w, g->in_c, g->kernel, g->stride, n);
        e->failed = true;
        return NULL;
    }
    return e;
}

bool hpo_dnnl_has_bf16(void)
{
    return dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_bf16;
}

static size_t dnnl_conv2d_scratch_floats(const hpo_conv_geom *g, int n)
{
    /* Enough for the BLAS fallback. */
    return hpo_kernels_blas.conv2d_scratch_floats(g, n);
}

static void dnnl_conv2d_forward(const hpo_conv_geom *g, int n, const float *x,
                                const float *w, const float *b, float *y, float *scratch)
{
    if (hpo_conv_direct_supports(g, omp_get_max_threads())) {
        hpo_conv_direct_forward(g, n, x, w, b, y);
        return;
    }
    conv_entry *e = conv_entry_get(g, n);
    if (e == NULL) {
        hpo_kernels_blas.conv2d_forward(g, n, x, w, b, y, scratch);
        return;
    }
    dnnl_memory_set_data_handle(e->src, (void *)x);
    dnnl_memory_set_data_handle(e->dst, y);
    dnnl_memory_set_data_handle(e->bias, (void *)b);
    dnnl_memory_set_data_handle(e->user_weights, (void *)w);

    dnnl_memory_t weights = e->user_weights;
    if (e->weights_fwd.primitive != NULL) {
        reorder_run(&e->weights_fwd, e->user_weights, true);
        weights = e->weights_fwd.memory;
    }
    dnnl_memory_t src = e->src;
    if (e->src_compute.primitive != NULL) {
        reorder_run(&e->src_compute, e->src, true);
        src = e->src_compute.memory;
    }
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights},
        {DNNL_ARG_BIAS, e->bias}, {DNNL_ARG_DST, e->dst},
    };
    dnnl_primitive_execute(e->fwd, stream, 4, args);
    dnnl_stream_wait(stream);
}

/* Input gradient: diff_dst must already be bound (and converted). */
static void conv_backward_data(conv_entry *e, const float *w, dnnl_memory_t diff_dst, float *dx)
{
    dnnl_memory_set_data_handle(e->diff_src, dx);
    dnnl_memory_set_data_handle(e->user_weights, (void *)w);
    dnnl_memory_t weights = e->user_weights;
    if (e->weights_bwd_data.primitive != NULL) {
        reorder_run(&e->weights_bwd_data, e->user_weights, true);
        weights = e->weights_bwd_data.memory;
    }
    dnnl_exec_arg_t dargs[] = {
        {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, weights},
        {DNNL_ARG_DIFF_SRC, e->diff_src},
    };
    dnnl_primitive_execute(e->bwd_data, stream, 3, dargs);
}

static void dnnl_conv2d_backward(const hpo_conv_geom *g, int n, const float *x,
                                 const float *w, const float *dy, float *dx, float *dw,
                                 float *db, float *scratch)
{
    bool direct = hpo_conv_direct_supports(g, omp_get_max_threads());
    if (direct) {
        hpo_conv_direct_backward_weights(g, n, x, dy, dw, db);
        if (dx == NULL)
            return;
    }
    conv_entry *e = conv_entry_get(g, n);
    if (e == NULL) {
        hpo_kernels_blas.conv2d_backward(g, n, x, w, dy, dx, dw, db, scratch);
        return;
    }
    dnnl_memory_set_data_handle(e->src, (void *)x);
    dnnl_memory_set_data_handle(e->diff_dst, (void *)dy);
    dnnl_memory_set_data_handle(e->diff_bias, db);
    dnnl_memory_set_data_handle(e->user_diff_weights, dw);

    /* The bf16 copy of src is made again here, because another layer of the
     * same geometry shares this cache entry and may have overwritten it. */
    dnnl_memory_t src = e->src, diff_dst = e->diff_dst;
    if (e->src_compute.primitive != NULL) {
        reorder_run(&e->src_compute, e->src, true);
        src = e->src_compute.memory;
    }
    if (e->diff_dst_compute.primitive != NULL) {
        reorder_run(&e->diff_dst_compute, e->diff_dst, true);
        diff_dst = e->diff_dst_compute.memory;
    }

    /* Weight gradients, then back into the HWIO layout. */
    if (!direct) {
        dnnl_memory_t diff_weights = e->diff_weights.primitive != NULL
                                         ? e->diff_weights.memory
                                         : e->user_diff_weights;
        dnnl_exec_arg_t wargs[] = {
            {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst},
            {DNNL_ARG_DIFF_WEIGHTS, diff_weights}, {DNNL_ARG_DIFF_BIAS, e->diff_bias},
        };
        dnnl_primitive_execute(e->bwd_weights, stream, 4, wargs);
        if (e->diff_weights.primitive != NULL)
            reorder_run(&e->diff_weights, e->user_diff_weights, false);
    }
    if (dx != NULL)
        conv_backward_data(e, w, diff_dst, dx);
    dnnl_stream_wait(stream);
}

/* ---- Dense layers --------------------------------------------------------- */

/* dnnl_sgemm takes row-major matrices, like the BLAS backend's calls. */
static void dnnl_dense_forward(int n, int in, int out, const float *x, const float *w,
                               const float *b, float *y)
{
    hpo_bias_broadcast(n, out, b, y);
    dnnl_sgemm('N', 'N', n, out, in, 1.0f, x, in, w, out, 1.0f, y, out);
}

static void dnnl_dense_backward(int n, int in, int out, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db)
{
    hpo_column_sums(n, out, dy, db);
    dnnl_sgemm('T', 'N', in, out, n, 1.0f, x, in, dy, out, 0.0f, dw, out);
    if (dx != NULL)
        dnnl_sgemm('N', 'T', n, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
}

const hpo_kernels hpo_kernels_dnnl = {
    .name = "dnnl",
    .conv2d_scratch_floats = dnnl_conv2d_scratch_floats,
    .conv2d_forward = dnnl_conv2d_forward,
    .conv2d_backward = dnnl_conv2d_backward,
    .conv2d_pool_forward = hpo_conv_direct_try_forward_pool,
    .conv2d_pool_backward_weights = hpo_conv_direct_try_pool_backward_weights,
    .dense_forward = dnnl_dense_forward,
    .dense_backward = dnnl_dense_backward,
};
