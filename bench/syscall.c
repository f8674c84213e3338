/* Syscall cost probe for the husk benchmark suite.
 *
 * usage: syscall [GETPPID_ITERS [OPEN_ITERS [PATH]]]
 *
 * Times GETPPID_ITERS raw getppid(2) calls and OPEN_ITERS open(2)+close(2)
 * pairs of PATH, after a short warm-up, each in BATCHES equal batches, and
 * prints one line of key=value pairs: ns per call of the fastest batch
 * (getppid_ns, open_close_ns: the least disturbed by the other tenants of a
 * small VM) and of the median batch (*_med_ns), then what /proc/self/status
 * says about seccomp and no_new_privs, so the caller can tell whether a
 * filter was applied. Built static (gcc -static -O2) so it runs in a bare
 * busybox rootfs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void status_field(const char *name, char *out, size_t len)
{
    char line[256];
    size_t n = strlen(name);
    FILE *f = fopen("/proc/self/status", "r");

    snprintf(out, len, "?");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(out, len, "%s", v);
            break;
        }
    }
    fclose(f);
}

#define BATCHES 20

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t[0..BATCHES) and returns the median. */
static double median(double *t)
{
    qsort(t, BATCHES, sizeof *t, cmp_double);
    return (t[BATCHES / 2 - 1] + t[BATCHES / 2]) / 2;
}

int main(int argc, char **argv)
{
    long getppid_iters = argc > 1 ? atol(argv[1]) : 1000000;
    long open_iters = argc > 2 ? atol(argv[2]) : 100000;
    const char *path = argc > 3 ? argv[3] : "/bin/busybox";
    long gb = getppid_iters / BATCHES, ob = open_iters / BATCHES;
    volatile long sink = 0;
    double g[BATCHES], o[BATCHES], gmed, omed;
    char seccomp[64], nnp[64];
    long i;
    int b;

    if (gb < 1 || ob < 1) {
        fprintf(stderr, "iterations must be at least %d\n", BATCHES);
        return 2;
    }
    for (i = 0; i < 1000; i++)
        sink += syscall(SYS_getppid);
    for (b = 0; b < BATCHES; b++) {
        double t0 = now_ns();
        for (i = 0; i < gb; i++)
            sink += syscall(SYS_getppid);
        g[b] = (now_ns() - t0) / (double)gb;
    }

    for (i = 0; i < 100; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(path);
            return 1;
        }
        close(fd);
    }
    for (b = 0; b < BATCHES; b++) {
        double t0 = now_ns();
        for (i = 0; i < ob; i++) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                perror(path);
                return 1;
            }
            close(fd);
        }
        o[b] = (now_ns() - t0) / (double)ob;
    }

    gmed = median(g);
    omed = median(o);
    status_field("Seccomp", seccomp, sizeof seccomp);
    status_field("NoNewPrivs", nnp, sizeof nnp);
    printf("getppid_ns=%.1f open_close_ns=%.1f getppid_med_ns=%.1f open_close_med_ns=%.1f "
           "getppid_iters=%ld open_iters=%ld seccomp=%s no_new_privs=%s\n",
           g[0], o[0], gmed, omed, gb * BATCHES, ob * BATCHES, seccomp, nnp);
    return sink == -12345 ? 2 : 0;
}
