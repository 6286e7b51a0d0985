/* Model template: the model spec with "$name" parameter references,
 * "repeat" blocks and "if" blocks, compiled once at load and evaluated
 * for each trial's values. */
#include "study_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"

#define PATH_MAX_LEN 512

typedef enum {
    NODE_LITERAL = 0, /* a JSON value copied as is */
    NODE_REF,         /* "$name": the parameter's value */
    NODE_OBJECT,
    NODE_ARRAY,
    NODE_REPEAT,      /* {"repeat": ..., "layers": [...]} inside a layer list */
    NODE_IF,          /* {"if": "$flag", "layers": [...]} inside a layer list */
} node_kind;

struct hpo_template_node {
    node_kind kind;
    char *key;                /* member name inside an object; owned */
    const cJSON *literal;     /* NODE_LITERAL; borrowed from the study document */

    /* Parameter names of a reference, a repeat count or an if condition:
     * one name, or one per repetition when the name contains "{i}". */
    char **names;             /* owned */
    int *params;              /* parameter index of each name, after linking */
    int n_names;
    bool per_repetition;

    int count;                /* NODE_REPEAT with a literal count, else -1 */
    hpo_template_node **children; /* members, items or block layers; owned */
    int n_children;
};

/* What a field of the model spec holds, by its key. */
typedef enum {
    EXPECT_ANY = 0,
    EXPECT_INT,
    EXPECT_NUMBER,
    EXPECT_STRING,
    EXPECT_BOOL,
} expect_kind;

typedef struct {
    hpo_study *study;
    char path[PATH_MAX_LEN];
    bool in_repeat;
    int first_index;          /* of the enclosing repeat */
    int max_count;            /* of the enclosing repeat */
    char *err;
    size_t errlen;
} compile_ctx;

static expect_kind expect_for_key(const char *key)
{
    static const char *const ints[] = {
        "filters", "kernel_size", "stride", "pool_size", "units",
        "batch_size", "epochs", "seed", "patience", NULL};
    static const char *const numbers[] = {
        "rate", "learning_rate", "momentum", "beta_1", "beta_2", "epsilon", NULL};
    static const char *const strings[] = {
        "type", "padding", "activation", "optimizer", "monitor", "name", NULL};

    if (key == NULL)
        return EXPECT_ANY;
    for (int i = 0; ints[i] != NULL; i++)
        if (strcmp(key, ints[i]) == 0)
            return EXPECT_INT;
    for (int i = 0; numbers[i] != NULL; i++)
        if (strcmp(key, numbers[i]) == 0)
            return EXPECT_NUMBER;
    for (int i = 0; strings[i] != NULL; i++)
        if (strcmp(key, strings[i]) == 0)
            return EXPECT_STRING;
    if (strcmp(key, "restore_best_weights") == 0)
        return EXPECT_BOOL;
    return EXPECT_ANY;
}

static const char *expect_name(expect_kind expect)
{
    switch (expect) {
    case EXPECT_INT: return "an integer";
    case EXPECT_NUMBER: return "a number";
    case EXPECT_STRING: return "a string";
    case EXPECT_BOOL: return "true or false";
    case EXPECT_ANY: break;
    }
    return "any value";
}

static bool choice_all_integers(const hpo_param *p)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, p->values) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
            return false;
    }
    return true;
}

static bool param_fits(const hpo_param *p, expect_kind expect)
{
    bool numbers = p->kind == HPO_PARAM_CHOICE && cJSON_IsNumber(p->values->child);

    switch (expect) {
    case EXPECT_ANY: return true;
    case EXPECT_INT:
        return p->kind == HPO_PARAM_INT || (numbers && choice_all_integers(p));
    case EXPECT_NUMBER:
        return p->kind == HPO_PARAM_INT || p->kind == HPO_PARAM_FLOAT || numbers;
    case EXPECT_STRING:
        return p->kind == HPO_PARAM_CHOICE && !numbers;
    case EXPECT_BOOL:
        return p->kind == HPO_PARAM_BOOL;
    }
    return false;
}

static const char *param_description(const hpo_param *p)
{
    if (p->kind == HPO_PARAM_CHOICE)
        return cJSON_IsNumber(p->values->child) ? "a choice of numbers" : "a choice of strings";
    if (p->kind == HPO_PARAM_INT)
        return "an int";
    return p->kind == HPO_PARAM_FLOAT ? "a float" : "a bool";
}

/* Appends a formatted segment to ctx->path and returns the old length, to
 * which the caller truncates the path again. */
static size_t path_push(compile_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t path_push(compile_ctx *ctx, const char *fmt, ...)
{
    size_t len = strlen(ctx->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->path + len, sizeof ctx->path - len, fmt, ap);
    va_end(ap);
    return len;
}

static hpo_template_node *node_new(node_kind kind, const char *key)
{
    hpo_template_node *node = calloc(1, sizeof *node);
    if (node == NULL)
        return NULL;
    node->kind = kind;
    node->count = -1;
    if (key != NULL && (node->key = strdup(key)) == NULL) {
        free(node);
        return NULL;
    }
    return node;
}

void hpo_template_destroy(hpo_template_node **node)
{
    if (node == NULL || *node == NULL)
        return;
    hpo_template_node *n = *node;
    for (int i = 0; i < n->n_children; i++)
        hpo_template_destroy(&n->children[i]);
    for (int i = 0; i < n->n_names; i++)
        free(n->names[i]);
    free(n->children);
    free(n->names);
    free(n->params);
    free(n->key);
    free(n);
    *node = NULL;
}

static int oom(compile_ctx *ctx)
{
    return hpo_error(ctx->err, ctx->errlen, "%s: out of memory", ctx->path);
}

/* Registers the parameter reference "$name" (text without the '$') of node
 * at ctx->path, expanding "{i}" for every repetition of the enclosing
 * repeat, and checks that each parameter fits expect. *def_out, when not
 * NULL, receives the definition of the last name. */
static int compile_names(compile_ctx *ctx, hpo_template_node *node, const char *text,
                         expect_kind expect, const char *field, const hpo_param **def_out)
{
    const char *mark = strstr(text, "{i}");
    int n = 1;

    if (mark != NULL && !ctx->in_repeat)
        return hpo_error(ctx->err, ctx->errlen,
                         "%s: \"$%s\" uses \"{i}\" outside a repeat block", ctx->path, text);
    if (mark != NULL && strstr(mark + 3, "{i}") != NULL)
        return hpo_error(ctx->err, ctx->errlen, "%s: \"$%s\" uses \"{i}\" twice",
                         ctx->path, text);
    if (mark != NULL)
        n = ctx->max_count;

    node->per_repetition = mark != NULL;
    node->names = calloc(n > 0 ? (size_t)n : 1, sizeof *node->names);
    node->params = calloc(n > 0 ? (size_t)n : 1, sizeof *node->params);
    if (node->names == NULL || node->params == NULL)
        return oom(ctx);

    for (int r = 0; r < n; r++) {
        char name[HPO_PARAM_NAME_MAX + 1];
        int len;
        if (mark != NULL)
            len = snprintf(name, sizeof name, "%.*s%d%s", (int)(mark - text), text,
                           ctx->first_index + r, mark + 3);
        else
            len = snprintf(name, sizeof name, "%s", text);
        if (len < 0 || (size_t)len >= sizeof name)
            return hpo_error(ctx->err, ctx->errlen,
                             "%s: parameter name \"%s\" is longer than %d characters",
                             ctx->path, text, HPO_PARAM_NAME_MAX);
        if ((node->names[r] = strdup(name)) == NULL)
            return oom(ctx);
        node->n_names++;

        const hpo_param *def;
        if (hpo_space_reference(&ctx->study->space, name, mark != NULL, ctx->path, &def,
                                ctx->err, ctx->errlen) < 0)
            return -1;
        if (!param_fits(def, expect))
            return hpo_error(ctx->err, ctx->errlen,
                             "%s: parameter \"%s\" is %s, but %s needs %s",
                             ctx->path, name, param_description(def), field,
                             expect_name(expect));
        if (def_out != NULL)
            *def_out = def;
    }
    return 0;
}

/* Reads a "$name" field of a repeat or if block. */
static const char *block_reference(compile_ctx *ctx, const cJSON *item, const char *what)
{
    if (!cJSON_IsString(item) || item->valuestring[0] != '$') {
        hpo_error(ctx->err, ctx->errlen, "%s: must be a \"$name\" reference to %s",
                  ctx->path, what);
        return NULL;
    }
    return item->valuestring + 1;
}

static int compile_value(compile_ctx *ctx, const cJSON *json, const char *key,
                         bool layer_list, expect_kind expect, hpo_template_node **out);

/* Compiles the items of an array (a layer list when layer_list) into
 * node's children; references among the items must fit expect. */
static int compile_items(compile_ctx *ctx, hpo_template_node *node, const cJSON *array,
                         bool layer_list, expect_kind expect)
{
    int n = cJSON_GetArraySize(array);
    node->children = calloc(n > 0 ? (size_t)n : 1, sizeof *node->children);
    if (node->children == NULL)
        return oom(ctx);

    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, array) {
        size_t len = path_push(ctx, "[%d]", i);
        int rc = compile_value(ctx, item, NULL, layer_list, expect, &node->children[i]);
        ctx->path[len] = '\0';

        /* A child that failed half-compiled is still freed with the node. */
        node->n_children = ++i;
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int compile_block_layers(compile_ctx *ctx, hpo_template_node *node, const cJSON *block)
{
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(block, "layers");
    size_t len = path_push(ctx, ".layers");
    int rc;

    if (layers == NULL)
        rc = hpo_error(ctx->err, ctx->errlen, "%s: missing; list the layers of the block",
                       ctx->path);
    else if (!cJSON_IsArray(layers))
        rc = hpo_error(ctx->err, ctx->errlen, "%s: must be a list of layers", ctx->path);
    else
        rc = compile_items(ctx, node, layers, true, EXPECT_ANY);
    ctx->path[len] = '\0';
    return rc;
}

static int check_block_keys(compile_ctx *ctx, const cJSON *block, const char *kind,
                            const char *extra)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, block) {
        if (strcmp(item->string, kind) == 0 || strcmp(item->string, "layers") == 0 ||
            (extra != NULL && strcmp(item->string, extra) == 0))
            continue;
        if (extra != NULL)
            return hpo_error(ctx->err, ctx->errlen,
                             "%s.%s: unknown field of a %s block; expected \"%s\", \"layers\" "
                             "or \"%s\"", ctx->path, item->string, kind, kind, extra);
        return hpo_error(ctx->err, ctx->errlen,
                         "%s.%s: unknown field of an %s block; expected \"%s\" or \"layers\"",
                         ctx->path, item->string, kind, kind);
    }
    return 0;
}

/* Compiles the count of a repeat block: a non-negative integer or "$name"
 * of an int parameter. */
static int compile_repeat_count(compile_ctx *ctx, hpo_template_node *node,
                                const cJSON *count, int *max_count)
{
    if (cJSON_IsNumber(count)) {
        double c = count->valuedouble;
        if (c != floor(c) || c < 0 || c > HPO_REPEAT_MAX)
            return hpo_error(ctx->err, ctx->errlen,
                             "%s: %g is not a count from 0 to %d", ctx->path, c, HPO_REPEAT_MAX);
        node->count = (int)c;
        *max_count = node->count;
        return 0;
    }

    const char *name = block_reference(ctx, count, "an int parameter or a count");
    if (name == NULL)
        return -1;
    if (strstr(name, "{i}") != NULL)
        return hpo_error(ctx->err, ctx->errlen,
                         "%s: the count of a repeat cannot use \"{i}\"", ctx->path);
    const hpo_param *p = NULL;
    if (compile_names(ctx, node, name, EXPECT_ANY, "repeat", &p) < 0)
        return -1;
    if (p->kind != HPO_PARAM_INT)
        return hpo_error(ctx->err, ctx->errlen,
                         "%s: parameter \"%s\" is %s, but a repeat count needs an int parameter",
                         ctx->path, name, param_description(p));
    if (p->min < 0 || p->max > HPO_REPEAT_MAX)
        return hpo_error(ctx->err, ctx->errlen,
                         "%s: parameter \"%s\" ranges from %g to %g, but a repeat count must "
                         "lie within 0 to %d", ctx->path, name, p->min, p->max, HPO_REPEAT_MAX);
    *max_count = (int)p->max;
    return 0;
}

static int compile_repeat(compile_ctx *ctx, const cJSON *block, hpo_template_node *node)
{
    const cJSON *first = cJSON_GetObjectItemCaseSensitive(block, "first_index");
    int max_count = 0;

    if (ctx->in_repeat) {
        size_t len = path_push(ctx, ".repeat");
        hpo_error(ctx->err, ctx->errlen, "%s: a repeat block cannot be inside another repeat",
                  ctx->path);
        ctx->path[len] = '\0';
        return -1;
    }
    if (check_block_keys(ctx, block, "repeat", "first_index") < 0)
        return -1;

    size_t len = path_push(ctx, ".repeat");
    int rc = compile_repeat_count(ctx, node, cJSON_GetObjectItemCaseSensitive(block, "repeat"),
                                  &max_count);
    ctx->path[len] = '\0';
    if (rc < 0)
        return -1;

    int first_index = 1;
    if (first != NULL) {
        if (!cJSON_IsNumber(first) || first->valuedouble != floor(first->valuedouble) ||
            first->valuedouble < 0 || first->valuedouble > HPO_REPEAT_MAX)
            return hpo_error(ctx->err, ctx->errlen,
                             "%s.first_index: must be an integer from 0 to %d",
                             ctx->path, HPO_REPEAT_MAX);
        first_index = (int)first->valuedouble;
    }

    ctx->in_repeat = true;
    ctx->first_index = first_index;
    ctx->max_count = max_count;
    rc = compile_block_layers(ctx, node, block);
    ctx->in_repeat = false;
    return rc;
}

static int compile_if(compile_ctx *ctx, const cJSON *block, hpo_template_node *node)
{
    if (check_block_keys(ctx, block, "if", NULL) < 0)
        return -1;

    size_t len = path_push(ctx, ".if");
    const char *name = block_reference(ctx, cJSON_GetObjectItemCaseSensitive(block, "if"),
                                       "a bool parameter");
    int rc = name != NULL ? compile_names(ctx, node, name, EXPECT_BOOL, "an if block", NULL) : -1;
    ctx->path[len] = '\0';
    if (rc < 0)
        return -1;
    return compile_block_layers(ctx, node, block);
}

static int compile_object(compile_ctx *ctx, const cJSON *json, hpo_template_node *node)
{
    int n = cJSON_GetArraySize(json);
    node->children = calloc(n > 0 ? (size_t)n : 1, sizeof *node->children);
    if (node->children == NULL)
        return oom(ctx);

    const cJSON *member;
    cJSON_ArrayForEach(member, json) {
        size_t len = path_push(ctx, ".%s", member->string);
        bool layer_list = strcmp(member->string, "layers") == 0;
        int rc = compile_value(ctx, member, member->string, layer_list,
                               expect_for_key(member->string),
                               &node->children[node->n_children]);
        ctx->path[len] = '\0';
        node->n_children++;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Compiles one JSON value found at ctx->path under key (NULL inside an
 * array). layer_list is true when json is a layer list or an item of one.
 * A reference here must fit expect. */
static int compile_value(compile_ctx *ctx, const cJSON *json, const char *key,
                         bool layer_list, expect_kind expect, hpo_template_node **out)
{
    node_kind kind = NODE_LITERAL;
    bool is_block = layer_list && key == NULL && cJSON_IsObject(json);

    if (cJSON_IsString(json) && json->valuestring[0] == '$')
        kind = NODE_REF;
    else if (is_block && cJSON_GetObjectItemCaseSensitive(json, "repeat") != NULL)
        kind = NODE_REPEAT;
    else if (is_block && cJSON_GetObjectItemCaseSensitive(json, "if") != NULL)
        kind = NODE_IF;
    else if (cJSON_IsObject(json))
        kind = NODE_OBJECT;
    else if (cJSON_IsArray(json))
        kind = NODE_ARRAY;

    if (layer_list && key != NULL && kind != NODE_ARRAY)
        return hpo_error(ctx->err, ctx->errlen, "%s: must be a list of layers", ctx->path);

    hpo_template_node *node = node_new(kind, key);
    if (node == NULL)
        return oom(ctx);
    *out = node;

    switch (kind) {
    case NODE_LITERAL:
        node->literal = json;
        return 0;
    case NODE_REF: {
        char field[80];
        snprintf(field, sizeof field, "\"%s\"", key != NULL ? key : "this item");
        return compile_names(ctx, node, json->valuestring + 1, expect, field, NULL);
    }
    case NODE_OBJECT:
        return compile_object(ctx, json, node);
    case NODE_ARRAY: {
        /* Only input_shape has typed items: the height, width and channels. */
        bool shape = key != NULL && strcmp(key, "input_shape") == 0;
        return compile_items(ctx, node, json, layer_list, shape ? EXPECT_INT : EXPECT_ANY);
    }
    case NODE_REPEAT:
        return compile_repeat(ctx, json, node);
    case NODE_IF:
        return compile_if(ctx, json, node);
    }
    return 0;
}

int hpo_template_compile(hpo_study *study, const cJSON *model, char *err, size_t errlen)
{
    compile_ctx ctx = {.study = study, .err = err, .errlen = errlen};

    snprintf(ctx.path, sizeof ctx.path, "model");
    if (model == NULL)
        return hpo_error(err, errlen, "model: missing; give the model template");
    if (!cJSON_IsObject(model))
        return hpo_error(err, errlen, "model: must be an object");
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(model, "layers")))
        return hpo_error(err, errlen, "model.layers: missing; list the layers");
    return compile_value(&ctx, model, NULL, false, EXPECT_ANY, &study->model);
}

static int link_node(hpo_study *study, hpo_template_node *node, char *err, size_t errlen)
{
    for (int i = 0; i < node->n_names; i++) {
        node->params[i] = hpo_study_param_index(study, node->names[i]);
        if (node->params[i] < 0)
            return hpo_error(err, errlen, "model: parameter \"%s\" has no index",
                             node->names[i]);
    }
    for (int i = 0; i < node->n_children; i++) {
        if (link_node(study, node->children[i], err, errlen) < 0)
            return -1;
    }
    return 0;
}

int hpo_template_link(hpo_study *study, char *err, size_t errlen)
{
    return link_node(study, study->model, err, errlen);
}

/* ---- evaluation ---- */

typedef struct {
    const hpo_study *study;
    const cJSON *values;
    bool *active;
    bool build;
    char *err;
    size_t errlen;
} eval_ctx;

/* Looks up, checks and marks active the parameter of node's name for
 * repetition rep. */
static const cJSON *eval_param(eval_ctx *ctx, const hpo_template_node *node, int rep)
{
    int index = node->params[node->per_repetition ? rep : 0];
    const hpo_param *p = &ctx->study->params[index];
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(ctx->values, p->name);

    if (hpo_param_check_value(p, value, ctx->err, ctx->errlen) < 0)
        return NULL;
    ctx->active[index] = true;
    return value;
}

static int eval_value(eval_ctx *ctx, const hpo_template_node *node, int rep, cJSON **out);

/* Evaluates one item of a list into array: a repeat or if block adds its
 * layers, anything else one item. */
static int eval_item(eval_ctx *ctx, const hpo_template_node *node, int rep, cJSON *array)
{
    if (node->kind == NODE_REPEAT || node->kind == NODE_IF) {
        int n_passes;
        if (node->kind == NODE_REPEAT && node->count >= 0) {
            n_passes = node->count;
        } else {
            const cJSON *v = eval_param(ctx, node, rep);
            if (v == NULL)
                return -1;
            n_passes = node->kind == NODE_REPEAT ? (int)v->valuedouble : cJSON_IsTrue(v);
        }
        for (int pass = 0; pass < n_passes; pass++) {
            int layer_rep = node->kind == NODE_REPEAT ? pass : rep;
            for (int i = 0; i < node->n_children; i++) {
                if (eval_item(ctx, node->children[i], layer_rep, array) < 0)
                    return -1;
            }
        }
        return 0;
    }

    cJSON *item = NULL;
    if (eval_value(ctx, node, rep, ctx->build ? &item : NULL) < 0)
        return -1;
    if (ctx->build && !cJSON_AddItemToArray(array, item)) {
        cJSON_Delete(item);
        return hpo_error(ctx->err, ctx->errlen, "model: out of memory");
    }
    return 0;
}

/* Evaluates a node other than a block; *out is set only when building. */
static int eval_value(eval_ctx *ctx, const hpo_template_node *node, int rep, cJSON **out)
{
    cJSON *result = NULL;

    switch (node->kind) {
    case NODE_LITERAL:
        if (ctx->build)
            result = cJSON_Duplicate(node->literal, true);
        break;
    case NODE_REF: {
        const cJSON *v = eval_param(ctx, node, rep);
        if (v == NULL)
            return -1;
        if (ctx->build)
            result = cJSON_Duplicate(v, true);
        break;
    }
    case NODE_OBJECT:
        if (ctx->build && (result = cJSON_CreateObject()) == NULL)
            break;
        for (int i = 0; i < node->n_children; i++) {
            cJSON *member = NULL;
            if (eval_value(ctx, node->children[i], rep, ctx->build ? &member : NULL) < 0) {
                cJSON_Delete(result);
                return -1;
            }
            if (ctx->build && !cJSON_AddItemToObject(result, node->children[i]->key, member)) {
                cJSON_Delete(member);
                cJSON_Delete(result);
                result = NULL;
                break;
            }
        }
        break;
    case NODE_ARRAY:
        if (ctx->build && (result = cJSON_CreateArray()) == NULL)
            break;
        for (int i = 0; i < node->n_children; i++) {
            if (eval_item(ctx, node->children[i], rep, result) < 0) {
                cJSON_Delete(result);
                return -1;
            }
        }
        break;
    case NODE_REPEAT:
    case NODE_IF:
        return hpo_error(ctx->err, ctx->errlen, "model: block outside a layer list");
    }

    if (ctx->build && result == NULL)
        return hpo_error(ctx->err, ctx->errlen, "model: out of memory");
    if (out != NULL)
        *out = result;
    return 0;
}

int hpo_template_eval(const hpo_study *study, const cJSON *values,
                      bool *active, cJSON **model_out, char *err, size_t errlen)
{
    eval_ctx ctx = {
        .study = study, .values = values, .active = active,
        .build = model_out != NULL, .err = err, .errlen = errlen,
    };
    return eval_value(&ctx, study->model, 0, model_out);
}
