/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays a fuzz target's corpus without libFuzzer: every file named on the command line, or found
 * directly inside a folder named there, is passed to LLVMFuzzerTestOneInput once. */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fileio.h"
#include "fuzz.h"
#include "util.h"

#define FUZZ_INPUT_MAX (16u * 1024u * 1024u)

static int replay_file(const char *path)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r = read_full_file(path, FUZZ_INPUT_MAX, &data, &size);

        if (r < 0) {
                fprintf(stderr, "%s: cannot read: %s\n", path, strerror(-r));
                return r;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)data, size);
        return 0;
}

int main(int argc, char *argv[])
{
        unsigned n = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %m\n", argv[i]);
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (replay_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        n++;
                        continue;
                }
                struct dirent **list;
                int k = scandir(argv[i], &list, NULL, alphasort);
                if (k < 0) {
                        fprintf(stderr, "%s: %m\n", argv[i]);
                        return EXIT_FAILURE;
                }
                for (int j = 0; j < k; j++) {
                        if (list[j]->d_name[0] != '.') {
                                _cleanup_free_ char *p = strdup_printf("%s/%s", argv[i], list[j]->d_name);
                                if (!p || replay_file(p) < 0)
                                        return EXIT_FAILURE;
                                n++;
                        }
                        free(list[j]);
                }
                free(list);
        }
        printf("replayed %u inputs\n", n);
        if (n == 0) {
                fprintf(stderr, "empty corpus\n");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
