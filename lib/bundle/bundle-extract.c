/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bundle.h"
#include "chunk-index.h"
#include "fileio.h"

#include <fcntl.h>
#include <sys/stat.h>

typedef struct Written {
        int dfd;
        const char *names[MANIFEST_PAYLOADS_MAX + 3];
        size_t n;
} Written;

static int create_file(Written *w, const char *name, UpkErr *err)
{
        int fd = openat(w->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot create %s: %m", name);
        w->names[w->n++] = name;
        return fd;
}

static int finish_file(int fd, const char *name, UpkErr *err)
{
        if (fsync(fd) < 0) {
                int r = -errno;
                safe_close(fd);
                return upk_err(err, UPK_ERR_IO, r, "cannot sync %s: %m", name);
        }
        if (close(fd) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot close %s: %m", name);
        return 0;
}

static int write_whole(Written *w, const char *name, const void *data, size_t size, UpkErr *err)
{
        int fd = create_file(w, name, err), r;

        if (fd < 0)
                return fd;
        r = loop_write(fd, data, size);
        if (r < 0) {
                safe_close(fd);
                return upk_err(err, UPK_ERR_IO, r, "cannot write %s: %m", name);
        }
        return finish_file(fd, name, err);
}

static int extract_all(Bundle *b, Written *w, UpkErr *err)
{
        const ManifestPayload *p;
        const void *data, *sig;
        size_t data_size, sig_size;
        int r;

        bundle_get_raw(b, &data, &data_size, &sig, &sig_size);
        r = write_whole(w, BUNDLE_MANIFEST_NAME, data, data_size, err);
        if (r < 0)
                return r;
        r = write_whole(w, BUNDLE_SIGNATURE_NAME, sig, sig_size, err);
        if (r < 0)
                return r;
        if (bundle_get_manifest(b)->format == 2) {
                bundle_get_raw_index(b, &data, &data_size);
                if (!data)
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "%s: the bundle was opened without keep_raw_index", CHUNK_INDEX_NAME);
                r = write_whole(w, CHUNK_INDEX_NAME, data, data_size, err);
                if (r < 0)
                        return r;
        }

        while ((r = bundle_next_payload(b, BUNDLE_PAYLOAD_STORED, &p, err)) > 0) {
                const void *buf;
                size_t len;
                int fd = create_file(w, p->file, err);
                if (fd < 0)
                        return fd;
                while ((r = bundle_read_block(b, &buf, &len, err)) > 0) {
                        r = loop_write(fd, buf, len);
                        if (r < 0) {
                                safe_close(fd);
                                return upk_err(err, UPK_ERR_IO, r, "cannot write %s: %m", p->file);
                        }
                }
                if (r < 0) {
                        safe_close(fd);
                        return r;
                }
                r = finish_file(fd, p->file, err);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (fsync(w->dfd) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot sync the folder: %m");
        return 0;
}

int bundle_extract(Bundle *b, const char *dir, UpkErr *err)
{
        Written w = { .dfd = -EBADF };
        bool created = false;
        int r;

        if (mkdir(dir, 0755) == 0)
                created = true;
        else if (errno != EEXIST)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot create folder %s: %m", dir);
        w.dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (w.dfd < 0) {
                r = upk_err(err, UPK_ERR_IO, -errno, "cannot open folder %s: %m", dir);
                if (created)
                        (void)rmdir(dir);
                return r;
        }

        r = extract_all(b, &w, err);
        if (r < 0) {
                for (size_t i = 0; i < w.n; i++)
                        (void)unlinkat(w.dfd, w.names[i], 0);
                if (created)
                        (void)rmdir(dir);
        }
        safe_close(w.dfd);
        return r;
}
