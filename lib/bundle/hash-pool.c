/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "hash-pool.h"

#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define HASH_POOL_THREADS_MAX 3u

struct HashPool {
        pthread_mutex_t lock;
        pthread_cond_t wake; /* a new round, or the end */
        pthread_cond_t idle; /* a thread finished its part of a round */
        pthread_t threads[HASH_POOL_THREADS_MAX];
        unsigned n_threads;
        bool quit;
        unsigned long round; /* counts the calls of hash_pool_run() */
        unsigned busy;       /* threads still working on this round */
        HashJob *jobs;
        size_t n_jobs;
        atomic_size_t next; /* the next job to take */
        atomic_bool failed;
};

/* Take jobs until none is left. */
static void work(HashPool *p)
{
        for (;;) {
                size_t i = atomic_fetch_add(&p->next, 1);

                if (i >= p->n_jobs)
                        return;
                if (!SHA256(p->jobs[i].data, p->jobs[i].size, p->jobs[i].digest))
                        atomic_store(&p->failed, true);
        }
}

static void *pool_thread(void *userdata)
{
        HashPool *p = userdata;
        unsigned long seen = 0;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->quit && p->round == seen)
                        pthread_cond_wait(&p->wake, &p->lock);
                if (p->quit)
                        break;
                seen = p->round;
                pthread_mutex_unlock(&p->lock);
                work(p);
                pthread_mutex_lock(&p->lock);
                if (--p->busy == 0)
                        pthread_cond_signal(&p->idle);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

/* Test builds: UPKEEP_TEST_HASH_POOL_FAIL=thread:N, the pool's thread N (from 0) cannot be started
 * (EAGAIN, as when the process is at its thread limit); =run, every hash_pool_run() reports a failure
 * after its round, as when OpenSSL failed on one of the jobs. */
static bool test_fail_thread(unsigned i)
{
#if HAVE_TEST_HOOKS
        const char *s = secure_getenv("UPKEEP_TEST_HASH_POOL_FAIL");
        uint64_t n;

        return s && strneq(s, "thread:", 7) && safe_atou64(s + 7, &n) >= 0 && n == i;
#else
        (void)i;
        return false;
#endif
}

static bool test_fail_run(void)
{
#if HAVE_TEST_HOOKS
        const char *s = secure_getenv("UPKEEP_TEST_HASH_POOL_FAIL");

        return s && streq(s, "run");
#else
        return false;
#endif
}

unsigned hash_pool_threads_default(void)
{
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);

        if (cpus <= 1)
                return 0;
        return cpus - 1 < (long)HASH_POOL_THREADS_MAX ? (unsigned)(cpus - 1) : HASH_POOL_THREADS_MAX;
}

int hash_pool_new(unsigned threads, HashPool **ret)
{
        HashPool *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wake, NULL);
        pthread_cond_init(&p->idle, NULL);
        if (threads > HASH_POOL_THREADS_MAX)
                threads = HASH_POOL_THREADS_MAX;
        for (; p->n_threads < threads; p->n_threads++) {
                int r = test_fail_thread(p->n_threads)
                                ? EAGAIN
                                : pthread_create(&p->threads[p->n_threads], NULL, pool_thread, p);
                if (r != 0) {
                        hash_pool_free(p);
                        return -r;
                }
        }
        *ret = p;
        return 0;
}

HashPool *hash_pool_free(HashPool *p)
{
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->quit = true;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        pthread_cond_destroy(&p->idle);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

int hash_pool_run(HashPool *p, HashJob *jobs, size_t n)
{
        pthread_mutex_lock(&p->lock);
        p->jobs = jobs;
        p->n_jobs = n;
        atomic_store(&p->next, 0);
        atomic_store(&p->failed, false);
        /* Every thread takes part; one that finds no job left is done at once. */
        p->busy = p->n_threads;
        p->round++;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        work(p);
        pthread_mutex_lock(&p->lock);
        while (p->busy > 0)
                pthread_cond_wait(&p->idle, &p->lock);
        p->jobs = NULL;
        p->n_jobs = 0;
        pthread_mutex_unlock(&p->lock);
        return atomic_load(&p->failed) || test_fail_run() ? -EIO : 0;
}
