/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The engine: libcurl's multi handle on an sd-event loop (curl's sockets as io sources, its timer as a
 * time source), and the hand-over of each finished attempt to its fetch. */

#include "fetch.h"

#include <pthread.h>
#include <sys/epoll.h>

#include "fetch-internal.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void engine_check_done(FetchEngine *e);

static int on_curl_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        FetchEngine *e = userdata;
        int action = 0, running;

        if (revents & EPOLLIN)
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        (void)curl_multi_socket_action(e->multi, fd, action, &running);
        engine_check_done(e);
        return 0;
}

static int on_curl_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        FetchEngine *e = userdata;
        int running;

        (void)curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        engine_check_done(e);
        return 0;
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
        FetchEngine *e = userp;
        sd_event_source *src = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                /* curl forgets the socket (and its pointer) itself; this also runs from
                 * curl_multi_cleanup(), where the multi handle must not be used any more. */
                sd_event_source_disable_unref(src);
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (src) {
                if (events == 0)
                        return sd_event_source_set_enabled(src, SD_EVENT_OFF) < 0 ? -1 : 0;
                r = sd_event_source_set_io_events(src, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(src, SD_EVENT_ON);
                return r < 0 ? -1 : 0;
        }
        r = sd_event_add_io(e->event, &src, fd, events, on_curl_io, e);
        if (r < 0)
                return -1;
        (void)sd_event_source_set_description(src, "fetch-socket");
        if (events == 0)
                (void)sd_event_source_set_enabled(src, SD_EVENT_OFF);
        if (curl_multi_assign(e->multi, fd, src) != CURLM_OK) {
                sd_event_source_disable_unref(src);
                return -1;
        }
        return 0;
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
        FetchEngine *e = userp;
        uint64_t now;
        int r;

        if (timeout_ms < 0)
                return e->timer && sd_event_source_set_enabled(e->timer, SD_EVENT_OFF) < 0 ? -1 : 0;

        r = sd_event_now(e->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return -1;
        now += (uint64_t)timeout_ms * 1000u;
        if (!e->timer) {
                r = sd_event_add_time(e->event, &e->timer, CLOCK_MONOTONIC, now, 1, on_curl_timer, e);
                if (r < 0)
                        return -1;
                (void)sd_event_source_set_description(e->timer, "fetch-timer");
                return 0;
        }
        r = sd_event_source_set_time(e->timer, now);
        if (r >= 0)
                r = sd_event_source_set_enabled(e->timer, SD_EVENT_ONESHOT);
        return r < 0 ? -1 : 0;
}

int fetch_engine_new(sd_event *event, FetchEngine **ret, UpkErr *err)
{
        FetchEngine *e;

        (void)pthread_once(&curl_once, curl_init_once);
        if (curl_init_result != CURLE_OK)
                return upk_err(err, UPK_ERR_NETWORK, -EIO, "libcurl could not be initialized: %s",
                               curl_easy_strerror(curl_init_result));
        e = calloc(1, sizeof(*e));
        if (!e)
                return upk_err_oom(err);
        e->multi = curl_multi_init();
        if (!e->multi) {
                free(e);
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "curl_multi_init failed");
        }
        e->event = sd_event_ref(event);
        curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
        curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
        curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
        curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
        *ret = e;
        return 0;
}

FetchEngine *fetch_engine_free(FetchEngine *e)
{
        if (!e)
                return NULL;
        while (e->fetches) {
                Fetch *f = e->fetches;

                fetch_detach(f);
                f->rate_timer = sd_event_source_disable_unref(f->rate_timer);
                f->cancel_source = sd_event_source_disable_unref(f->cancel_source);
                f->state = FETCH_FINISHED;
                e->fetches = f->next;
                f->prev = f->next = NULL;
                f->engine = NULL;
        }
        /* curl_multi_cleanup() may still report sockets to close; the sources go with them. */
        curl_multi_cleanup(e->multi);
        e->timer = sd_event_source_disable_unref(e->timer);
        sd_event_unref(e->event);
        free(e);
        return NULL;
}

static void engine_check_done(FetchEngine *e)
{
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(e->multi, &left))) {
                Fetch *f = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                (void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
                if (f && f->state == FETCH_RUNNING)
                        fetch_attempt_done(f, msg->data.result);
        }
}
