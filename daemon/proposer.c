#include "proposer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "hpo/error.h"
#include "hpo/log.h"

struct hpo_proposer {
    void *loop_sock;      /* the event loop's end */
    void *thread_sock;    /* the thread's end; used only by the thread
                             once it runs */
    pthread_t thread;
    bool thread_started;
    bool busy;
};

/* Sends one pointer as a message of sizeof(void *) bytes; NULL tells the
 * thread to end. */
static int send_pointer(void *sock, void *pointer, int flags)
{
    return zmq_send(sock, &pointer, sizeof pointer, flags) == (int)sizeof pointer ? 0 : -1;
}

/* Receives one pointer; returns 1 with *pointer set, 0 when none waits
 * (ZMQ_DONTWAIT), -1 on failure. */
static int recv_pointer(void *sock, void **pointer, int flags)
{
    int n = zmq_recv(sock, pointer, sizeof *pointer, flags);
    if (n == (int)sizeof *pointer)
        return 1;
    if (n < 0 && errno == EAGAIN)
        return 0;
    return -1;
}

/* Runs each job it receives and sends it back, until it receives NULL. */
static void *proposer_thread(void *arg)
{
    hpo_proposer *p = arg;
    for (;;) {
        void *received = NULL;
        int rc = recv_pointer(p->thread_sock, &received, 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            hpo_log_error("proposer: receiving a job failed: %s", zmq_strerror(errno));
            break;
        }
        if (received == NULL)
            break;

        hpo_bayes_job *job = received;
        char err[HPO_ERR_MAX] = "";
        if (hpo_bayes_job_run(job, err, sizeof err) != 0)
            hpo_log_warn("proposer: the GP proposal failed: %s", err);
        while (send_pointer(p->thread_sock, job, 0) != 0) {
            if (errno != EINTR) {
                hpo_log_error("proposer: returning a job failed: %s", zmq_strerror(errno));
                hpo_bayes_job_destroy(&job);
                return NULL;
            }
        }
    }
    return NULL;
}

int hpo_proposer_start(void *ctx, hpo_proposer **out, char *err, size_t errlen)
{
    *out = NULL;
    hpo_proposer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return hpo_error(err, errlen, "proposer: out of memory");

    /* The address only has to be unique within the context. */
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://hpod-proposer-%p", (void *)p);
    int linger = 0;
    p->loop_sock = zmq_socket(ctx, ZMQ_PAIR);
    p->thread_sock = zmq_socket(ctx, ZMQ_PAIR);
    if (p->loop_sock == NULL || p->thread_sock == NULL ||
        zmq_setsockopt(p->loop_sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(p->thread_sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(p->loop_sock, endpoint) != 0 || zmq_connect(p->thread_sock, endpoint) != 0) {
        hpo_error(err, errlen, "proposer: creating the %s sockets failed: %s", endpoint,
                  zmq_strerror(errno));
        goto fail;
    }

    /* Signals belong to the event loop's thread. */
    sigset_t block, old;
    sigfillset(&block);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&p->thread, NULL, proposer_thread, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        hpo_error(err, errlen, "proposer: starting the thread failed: %s", strerror(rc));
        goto fail;
    }
    p->thread_started = true;
    *out = p;
    return 0;

fail:
    hpo_proposer_stop(&p);
    return -1;
}

void hpo_proposer_stop(hpo_proposer **proposer)
{
    if (proposer == NULL || *proposer == NULL)
        return;
    hpo_proposer *p = *proposer;

    if (p->thread_started) {
        /* A running job comes back first; the thread then takes NULL. */
        if (p->busy) {
            void *job = NULL;
            if (recv_pointer(p->loop_sock, &job, 0) == 1)
                hpo_bayes_job_destroy((hpo_bayes_job **)&job);
        }
        if (send_pointer(p->loop_sock, NULL, 0) == 0)
            pthread_join(p->thread, NULL);
        else
            hpo_log_error("proposer: stopping the thread failed: %s; it is left running",
                          zmq_strerror(errno));
    }
    if (p->loop_sock != NULL)
        zmq_close(p->loop_sock);
    if (p->thread_sock != NULL)
        zmq_close(p->thread_sock);
    free(p);
    *proposer = NULL;
}

void *hpo_proposer_socket(const hpo_proposer *proposer)
{
    return proposer->loop_sock;
}

bool hpo_proposer_busy(const hpo_proposer *proposer)
{
    return proposer->busy;
}

int hpo_proposer_submit(hpo_proposer *p, hpo_bayes_job **job, char *err, size_t errlen)
{
    if (p->busy)
        return hpo_error(err, errlen, "proposer: a job runs already");
    if (send_pointer(p->loop_sock, *job, ZMQ_DONTWAIT) != 0)
        return hpo_error(err, errlen, "proposer: sending a job failed: %s",
                         zmq_strerror(errno));
    *job = NULL;
    p->busy = true;
    return 0;
}

int hpo_proposer_collect(hpo_proposer *p, hpo_bayes_job **job, char *err, size_t errlen)
{
    *job = NULL;
    if (!p->busy)
        return 0;
    void *received = NULL;
    int rc = recv_pointer(p->loop_sock, &received, ZMQ_DONTWAIT);
    if (rc < 0)
        return hpo_error(err, errlen, "proposer: receiving a job failed: %s",
                         zmq_strerror(errno));
    if (rc == 0)
        return 0;
    p->busy = false;
    *job = received;
    return 1;
}
