/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "readahead.h"

#include <pthread.h>

struct ReadAhead {
        int fd;
        pthread_t thread;
        bool started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        uint8_t *block[READAHEAD_BLOCKS];
        size_t len[READAHEAD_BLOCKS];
        /* guarded by lock: blocks [head, head + lent + filled) mod READAHEAD_BLOCKS are in use */
        unsigned head;   /* the oldest block in use */
        unsigned lent;   /* 1 while the block at head is lent out by readahead_next() */
        unsigned filled; /* blocks read and not handed out yet, after the lent one */
        bool ended;      /* the thread hit the end of the file or an error */
        int r;           /* 0, or -errno of the failed read */
        bool quit;
};

static void *readahead_thread(void *userdata)
{
        ReadAhead *ra = userdata;

        pthread_mutex_lock(&ra->lock);
        for (;;) {
                unsigned slot;
                ssize_t k;

                while (ra->lent + ra->filled == READAHEAD_BLOCKS && !ra->quit)
                        pthread_cond_wait(&ra->cond, &ra->lock);
                if (ra->quit)
                        break;
                slot = (ra->head + ra->lent + ra->filled) % READAHEAD_BLOCKS;
                /* A free block belongs to this thread alone: read without the lock. */
                pthread_mutex_unlock(&ra->lock);
                do
                        k = read(ra->fd, ra->block[slot], READAHEAD_BLOCK_SIZE);
                while (k < 0 && errno == EINTR);
                if (k < 0)
                        k = -errno;
                pthread_mutex_lock(&ra->lock);
                if (k > 0) {
                        ra->len[slot] = (size_t)k;
                        ra->filled++;
                } else {
                        ra->r = (int)k;
                        ra->ended = true;
                }
                pthread_cond_broadcast(&ra->cond);
                if (ra->ended)
                        break;
        }
        pthread_mutex_unlock(&ra->lock);
        return NULL;
}

int readahead_new(int fd, ReadAhead **ret)
{
        _cleanup_(readahead_freep) ReadAhead *ra = NULL;
        int r;

        ra = calloc(1, sizeof(*ra));
        if (!ra)
                return -ENOMEM;
        ra->fd = fd;
        pthread_mutex_init(&ra->lock, NULL);
        pthread_cond_init(&ra->cond, NULL);
        for (unsigned i = 0; i < READAHEAD_BLOCKS; i++) {
                ra->block[i] = malloc(READAHEAD_BLOCK_SIZE);
                if (!ra->block[i])
                        return -ENOMEM;
        }
        r = pthread_create(&ra->thread, NULL, readahead_thread, ra);
        if (r != 0)
                return -r;
        ra->started = true;
        *ret = TAKE_PTR(ra);
        return 0;
}

ReadAhead *readahead_free(ReadAhead *ra)
{
        if (!ra)
                return NULL;
        if (ra->started) {
                pthread_mutex_lock(&ra->lock);
                ra->quit = true;
                pthread_cond_broadcast(&ra->cond);
                pthread_mutex_unlock(&ra->lock);
                pthread_join(ra->thread, NULL); /* at most one read() away */
        }
        for (unsigned i = 0; i < READAHEAD_BLOCKS; i++)
                free(ra->block[i]);
        pthread_cond_destroy(&ra->cond);
        pthread_mutex_destroy(&ra->lock);
        free(ra);
        return NULL;
}

ssize_t readahead_next(void *userdata, const void **ret_buf)
{
        ReadAhead *ra = userdata;
        ssize_t ret;

        pthread_mutex_lock(&ra->lock);
        if (ra->lent) {
                ra->lent = 0;
                ra->head = (ra->head + 1) % READAHEAD_BLOCKS;
                pthread_cond_broadcast(&ra->cond);
        }
        while (ra->filled == 0 && !ra->ended)
                pthread_cond_wait(&ra->cond, &ra->lock);
        if (ra->filled > 0) {
                ra->filled--;
                ra->lent = 1;
                *ret_buf = ra->block[ra->head];
                ret = (ssize_t)ra->len[ra->head];
        } else
                ret = ra->r;
        pthread_mutex_unlock(&ra->lock);
        return ret;
}
