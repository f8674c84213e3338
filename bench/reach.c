/* reach: how many x86_64 system calls can a process get to the kernel
 * through its seccomp filters?
 *
 * usage: reach [--list] [--verbose] PID
 *        reach --implemented
 *
 * Run as root on the host (not under seccomp itself: the kernel hands
 * filters out only to a tracer with CAP_SYS_ADMIN that has no filter).
 *
 * 1. Which numbers this kernel implements. Every number from 0 to MAX_NR
 *    is called once with all six arguments 0, each in its own forked child
 *    that first moves into fresh user, UTS, IPC, network and mount
 *    namespaces and closes every descriptor, so a call that does work does
 *    it on nothing the host shares (and as nobody, without capabilities
 *    in the host's namespaces). A number is unimplemented when the call
 *    returns ENOSYS; anything else (another error, success, still blocked
 *    in the call after 500 ms, a signal, the child exiting) means the
 *    kernel ran it.
 * 2. PID's filter chain, read back with PTRACE_SECCOMP_GET_FILTER (PID is
 *    stopped with PTRACE_SEIZE + PTRACE_INTERRUPT for the moment it takes,
 *    then released). Index 0 is the oldest filter (the kernel counts from
 *    the first one installed).
 * 3. Each filter is run in a classic-BPF interpreter for every number
 *    (arch AUDIT_ARCH_X86_64), and the results combined the way the kernel
 *    combines them: the action of lowest precedence wins
 *    (KILL_PROCESS < KILL_THREAD < TRAP < ERRNO < USER_NOTIF < TRACE < LOG
 *    < ALLOW), the newest filter first among equals.
 *
 * A number is *reachable* when it is implemented and, for some value of
 * the arguments, every filter returns ALLOW or LOG. Arguments are unknown
 * to the interpreter: a comparison that depends on them takes both
 * branches, so argument-filtered calls (clone, personality, ...) count as
 * reachable if any argument value gets through — an upper bound, the safe
 * direction for a claim about attack surface. `reachable_zero_args` is the
 * exact count for all-zero arguments. TRACE (no tracer: ENOSYS) and
 * USER_NOTIF (an agent decides) do not count as reachable.
 *
 * The kernel lets `uretprobe` and `uprobe` through every filter since 6.14
 * (they are how uprobes return to user space); this probe evaluates the
 * filters as written and so counts them only when the filters allow them.
 *
 * Output: one line of key=value pairs; --list adds one line per
 * implemented number: "nr name verdict", verdict being "reachable",
 * "ERRNO(n)", "KILL_PROCESS", ... for all-zero arguments (with "+args"
 * when some other argument value would get through). --implemented prints
 * the implemented numbers only.
 *
 * build: gcc -O2 -Wall -o reach bench/reach.c -lseccomp   (libseccomp names
 * the numbers; it is only used for that)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif
#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS 0x80000000U
#endif
#ifndef SECCOMP_RET_LOG
#define SECCOMP_RET_LOG 0x7ffc0000U
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif
#ifndef SECCOMP_RET_ACTION_FULL
#define SECCOMP_RET_ACTION_FULL 0xffff0000U
#endif

#define MAX_NR 550
#define MAX_FILTERS 64
#define BPF_MAX 4096

/* ---------------------------------------------------------------- names */

/* Numbers newer than what libseccomp 2.5 knows (x86_64 syscall table). */
static const struct {
    int nr;
    const char *name;
} newer[] = {
    {335, "uretprobe"}, {336, "uprobe"}, {451, "cachestat"}, {452, "fchmodat2"},
    {453, "map_shadow_stack"}, {454, "futex_wake"}, {455, "futex_wait"},
    {456, "futex_requeue"}, {457, "statmount"}, {458, "listmount"},
    {459, "lsm_get_self_attr"}, {460, "lsm_set_self_attr"}, {461, "lsm_list_modules"},
    {462, "mseal"}, {463, "setxattrat"}, {464, "getxattrat"}, {465, "listxattrat"},
    {466, "removexattrat"}, {467, "open_tree_attr"}, {468, "file_getattr"},
    {469, "file_setattr"},
};

static const char *name_of(int nr)
{
    static char buf[32];
    char *n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
    size_t i;

    if (n) {
        snprintf(buf, sizeof buf, "%s", n);
        free(n);
        return buf;
    }
    for (i = 0; i < sizeof newer / sizeof newer[0]; i++)
        if (newer[i].nr == nr)
            return newer[i].name;
    snprintf(buf, sizeof buf, "nr_%d", nr);
    return buf;
}

/* ------------------------------------------------ 1. implemented numbers */

/* Call nr with zero arguments. If the call made a new process or thread
 * that shares nothing with us (fork, vfork, clone with zero flags), the new
 * one leaves at once with exit(0) without touching its stack (a vfork child
 * shares it with its parent). Returns the raw result. */
static long call0(long nr, long self_tid)
{
    long ret;
    register long r10 __asm__("r10") = 0;
    register long r8 __asm__("r8") = 0;
    register long r9 __asm__("r9") = 0;

    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "mov $186, %%eax\n\t"          /* gettid */
        "syscall\n\t"
        "cmp %%rax, %[tid]\n\t"
        "je 2f\n\t"
        "mov $60, %%eax\n\t"           /* exit(0): the new process */
        "xor %%edi, %%edi\n\t"
        "syscall\n\t"
        "2: xor %%eax, %%eax\n\t"
        "1:\n\t"
        : "=a"(ret)
        : "a"(nr), "D"(0L), "S"(0L), "d"(0L), "r"(r10), "r"(r8), "r"(r9), [tid] "r"(self_tid)
        : "rcx", "r11", "memory");
    return ret;
}

/* Exit with only the `exit` system call (after seccomp strict mode, the
 * probe's own call may have left nothing else allowed). */
static void raw_exit(int code)
{
    __asm__ volatile("syscall" : : "a"(60L), "D"((long)code) : "rcx", "r11", "memory");
    __builtin_unreachable();
}

/* What a calibration child reports, in memory it shares with the probe:
 * the time it made the call, and the call's result once it returned.
 * Timing alone cannot tell a call that blocks from a child that has not
 * got to its call yet on a busy machine; this can. */
struct slot {
    volatile int state; /* 0 setting up, 1 in the call, 2 returned */
    volatile long result;
    volatile double called_at;
};

static struct slot *slots;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void calibrate_child(int nr)
{
    long tid, r;

    if (unshare(CLONE_NEWUSER | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS) != 0)
        raw_exit(1);
    /* Nothing to act on: no descriptors at all, no child. */
    if (syscall(SYS_close_range, 0U, ~0U, 0U) != 0)
        raw_exit(1);
    tid = syscall(SYS_gettid);
    slots[nr].called_at = mono();
    slots[nr].state = 1;
    r = call0(nr, tid);
    slots[nr].result = r;
    slots[nr].state = 2;
    raw_exit(0);
}

/* impl[nr] = 1 when the kernel implements nr. Runs 32 children at a time.
 * A child still in its call 500 ms after making it is blocked there (pause,
 * select, ...): the kernel has the call. A child that died in its call
 * (exit, rt_sigreturn, strict seccomp mode, ...) also ran it. */
static int calibrate(unsigned char *impl)
{
    enum { WIDTH = 32 };
    pid_t pids[WIDTH];
    int nrs[WIDTH];
    int next = 0, live = 0, i;
    double start[WIDTH];

    slots = mmap(NULL, sizeof(struct slot) * (MAX_NR + 1), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED) {
        perror("mmap");
        return -1;
    }
    memset(pids, 0, sizeof pids);
    while (next <= MAX_NR || live > 0) {
        for (i = 0; i < WIDTH && next <= MAX_NR; i++) {
            if (pids[i])
                continue;
            pid_t p = fork();
            if (p < 0) {
                perror("fork");
                return -1;
            }
            if (p == 0)
                calibrate_child(next);
            pids[i] = p;
            nrs[i] = next++;
            start[i] = mono();
            live++;
        }
        for (i = 0; i < WIDTH; i++) {
            struct slot *s;
            int st;
            pid_t r;

            if (!pids[i])
                continue;
            s = &slots[nrs[i]];
            r = waitpid(pids[i], &st, WNOHANG | __WALL);
            if (r == 0) {
                double now = mono();
                if ((s->state == 1 && now - s->called_at > 0.5) || now - start[i] > 60) {
                    kill(pids[i], SIGKILL);
                    waitpid(pids[i], &st, __WALL);
                    if (s->state != 1) {
                        fprintf(stderr, "reach: calibration child for %d hangs\n", nrs[i]);
                        return -1;
                    }
                    impl[nrs[i]] = 1;
                    pids[i] = 0;
                    live--;
                }
                continue;
            }
            if (r < 0) {
                perror("waitpid");
                return -1;
            }
            if (WIFSTOPPED(st)) {
                /* PTRACE_TRACEME made it our tracee; a signal stopped it. */
                kill(pids[i], SIGKILL);
                waitpid(pids[i], &st, __WALL);
            }
            if (s->state == 0) {
                fprintf(stderr, "reach: could not isolate the calibration child "
                                "(unshare or close_range failed)\n");
                return -1;
            }
            impl[nrs[i]] = !(s->state == 2 && s->result == -ENOSYS);
            pids[i] = 0;
            live--;
        }
        usleep(1000);
    }
    /* Processes a zero-flag clone left behind are reparented; reap any of ours. */
    while (waitpid(-1, NULL, WNOHANG | __WALL) > 0)
        ;
    munmap(slots, sizeof(struct slot) * (MAX_NR + 1));
    return 0;
}

/* ------------------------------------------------------ 2. read filters */

struct filter {
    int len;
    struct sock_filter insns[BPF_MAX];
};

static struct filter filters[MAX_FILTERS]; /* [0] = oldest */
static int nfilters;

static int read_filters(pid_t pid)
{
    int st, i;

    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) {
        fprintf(stderr, "reach: PTRACE_SEIZE %d: %s\n", pid, strerror(errno));
        return -1;
    }
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0 || waitpid(pid, &st, __WALL) != pid) {
        fprintf(stderr, "reach: PTRACE_INTERRUPT %d: %s\n", pid, strerror(errno));
        ptrace(PTRACE_DETACH, pid, 0, 0);
        return -1;
    }
    for (i = 0; i < MAX_FILTERS; i++) {
        long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)i, NULL);
        if (n < 0) {
            if (errno == ENOENT || (errno == EINVAL && i == 0))
                break; /* no more filters (EINVAL: not under seccomp at all) */
            fprintf(stderr, "reach: PTRACE_SECCOMP_GET_FILTER %d: %s\n", i, strerror(errno));
            ptrace(PTRACE_DETACH, pid, 0, 0);
            return -1;
        }
        if (n > BPF_MAX) {
            fprintf(stderr, "reach: filter %d has %ld instructions\n", i, n);
            ptrace(PTRACE_DETACH, pid, 0, 0);
            return -1;
        }
        filters[i].len = (int)ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)(long)i,
                                     filters[i].insns);
        if (filters[i].len != n) {
            fprintf(stderr, "reach: filter %d changed while read\n", i);
            ptrace(PTRACE_DETACH, pid, 0, 0);
            return -1;
        }
    }
    nfilters = i;
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return 0;
}

/* -------------------------------------------------- 3. BPF interpretation */

/* Action classes as bits, for "which actions can this filter return". */
enum { A_KILL_PROCESS, A_KILL_THREAD, A_TRAP, A_ERRNO, A_NOTIF, A_TRACE, A_LOG, A_ALLOW, A_N };

static int class_of(uint32_t ret)
{
    switch (ret & SECCOMP_RET_ACTION_FULL) {
    case SECCOMP_RET_KILL_PROCESS: return A_KILL_PROCESS;
    case SECCOMP_RET_KILL_THREAD: return A_KILL_THREAD;
    case SECCOMP_RET_TRAP: return A_TRAP;
    case SECCOMP_RET_ERRNO: return A_ERRNO;
    case SECCOMP_RET_USER_NOTIF: return A_NOTIF;
    case SECCOMP_RET_TRACE: return A_TRACE;
    case SECCOMP_RET_LOG: return A_LOG;
    case SECCOMP_RET_ALLOW: return A_ALLOW;
    default: return A_KILL_PROCESS; /* the kernel treats unknown actions so */
    }
}

/* A value is known (k) or unknown (anything: it came from the arguments or
 * the instruction pointer). */
struct val {
    int known;
    uint32_t v;
};

struct state {
    struct val a, x, mem[BPF_MEMWORDS];
};

/* Run filter f for nr. With zero_args, arguments and instruction pointer are
 * 0 and the single result goes to *ret. Otherwise they are unknown, both
 * branches of a test on them are taken, and every possible action class is
 * set in *classes. Returns -1 on an instruction it does not know. */
static int run(const struct filter *f, int pc, struct state s, uint32_t nr, int zero_args,
               uint32_t *ret, unsigned *classes, int depth)
{
    if (depth > 64)
        return -1;
    while (pc < f->len) {
        const struct sock_filter *in = &f->insns[pc];
        uint16_t code = in->code;
        struct val src;

        switch (BPF_CLASS(code)) {
        case BPF_LD:
        case BPF_LDX: {
            struct val v = {1, 0};
            if (BPF_MODE(code) == BPF_ABS && BPF_SIZE(code) == BPF_W) {
                uint32_t off = in->k;
                if (off == offsetof(struct seccomp_data, nr))
                    v.v = nr;
                else if (off == offsetof(struct seccomp_data, arch))
                    v.v = AUDIT_ARCH_X86_64;
                else if (off >= 8 && off < sizeof(struct seccomp_data) && off % 4 == 0)
                    v.known = zero_args, v.v = 0;
                else
                    return -1;
            } else if (BPF_MODE(code) == BPF_IMM) {
                v.v = in->k;
            } else if (BPF_MODE(code) == BPF_MEM && in->k < BPF_MEMWORDS) {
                v = s.mem[in->k];
            } else if (BPF_MODE(code) == BPF_LEN) {
                v.v = sizeof(struct seccomp_data);
            } else {
                return -1;
            }
            if (BPF_CLASS(code) == BPF_LD)
                s.a = v;
            else
                s.x = v;
            pc++;
            break;
        }
        case BPF_ST:
        case BPF_STX:
            if (in->k >= BPF_MEMWORDS)
                return -1;
            s.mem[in->k] = BPF_CLASS(code) == BPF_ST ? s.a : s.x;
            pc++;
            break;
        case BPF_ALU: {
            uint32_t b;
            src = BPF_SRC(code) == BPF_X ? s.x : (struct val){1, in->k};
            b = src.v;
            if (BPF_OP(code) == BPF_NEG) {
                s.a.v = -s.a.v;
            } else if (!s.a.known || !src.known) {
                s.a.known = 0;
            } else {
                switch (BPF_OP(code)) {
                case BPF_ADD: s.a.v += b; break;
                case BPF_SUB: s.a.v -= b; break;
                case BPF_MUL: s.a.v *= b; break;
                case BPF_DIV: if (!b) return -1; s.a.v /= b; break;
                case BPF_MOD: if (!b) return -1; s.a.v %= b; break;
                case BPF_AND: s.a.v &= b; break;
                case BPF_OR: s.a.v |= b; break;
                case BPF_XOR: s.a.v ^= b; break;
                case BPF_LSH: s.a.v = b < 32 ? s.a.v << b : 0; break;
                case BPF_RSH: s.a.v = b < 32 ? s.a.v >> b : 0; break;
                default: return -1;
                }
            }
            pc++;
            break;
        }
        case BPF_JMP: {
            int taken;
            if (BPF_OP(code) == BPF_JA) {
                pc += 1 + (int)in->k;
                break;
            }
            src = BPF_SRC(code) == BPF_X ? s.x : (struct val){1, in->k};
            if (!s.a.known || !src.known) {
                /* Depends on the arguments: both ways. */
                if (run(f, pc + 1 + in->jt, s, nr, zero_args, ret, classes, depth + 1) < 0)
                    return -1;
                pc += 1 + in->jf;
                depth++;
                break;
            }
            switch (BPF_OP(code)) {
            case BPF_JEQ: taken = s.a.v == src.v; break;
            case BPF_JGT: taken = s.a.v > src.v; break;
            case BPF_JGE: taken = s.a.v >= src.v; break;
            case BPF_JSET: taken = (s.a.v & src.v) != 0; break;
            default: return -1;
            }
            pc += 1 + (taken ? in->jt : in->jf);
            break;
        }
        case BPF_RET: {
            uint32_t r;
            if (BPF_RVAL(code) == BPF_K)
                r = in->k;
            else if (s.a.known)
                r = s.a.v;
            else
                return -1;
            *ret = r;
            *classes |= 1u << class_of(r);
            return 0;
        }
        case BPF_MISC:
            if (BPF_MISCOP(code) == BPF_TAX)
                s.x = s.a;
            else
                s.a = s.x;
            pc++;
            break;
        default:
            return -1;
        }
    }
    return -1; /* fell off the end: the kernel would not have loaded it */
}

/* Precedence as the kernel compares actions (signed). */
static int32_t prec(uint32_t ret)
{
    return (int32_t)(ret & SECCOMP_RET_ACTION_FULL);
}

static void verdict_text(uint32_t r, char *buf, size_t len)
{
    switch (class_of(r)) {
    case A_ALLOW: snprintf(buf, len, "reachable"); break;
    case A_LOG: snprintf(buf, len, "reachable(LOG)"); break;
    case A_ERRNO: snprintf(buf, len, "ERRNO(%u)", r & SECCOMP_RET_DATA); break;
    case A_TRACE: snprintf(buf, len, "TRACE"); break;
    case A_NOTIF: snprintf(buf, len, "USER_NOTIF"); break;
    case A_TRAP: snprintf(buf, len, "TRAP"); break;
    case A_KILL_THREAD: snprintf(buf, len, "KILL_THREAD"); break;
    default: snprintf(buf, len, "KILL_PROCESS"); break;
    }
}

int main(int argc, char **argv)
{
    static unsigned char impl[MAX_NR + 1];
    int list = 0, only_impl = 0, i, nr;
    int implemented = 0, reach_any = 0, reach_zero = 0, enosys = 0, eperm = 0, other = 0;
    pid_t pid = 0;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list"))
            list = 1;
        else if (!strcmp(argv[i], "--implemented"))
            only_impl = 1;
        else if (argv[i][0] != '-' && !pid)
            pid = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: reach [--list] PID | reach --implemented\n");
            return 2;
        }
    }
    if (!pid && !only_impl) {
        fprintf(stderr, "usage: reach [--list] PID | reach --implemented\n");
        return 2;
    }
    if (pid && read_filters(pid) < 0)
        return 1;
    if (calibrate(impl) < 0)
        return 1;
    for (nr = 0; nr <= MAX_NR; nr++)
        implemented += impl[nr];
    if (only_impl) {
        for (nr = 0; nr <= MAX_NR; nr++)
            if (impl[nr])
                printf("%d %s\n", nr, name_of(nr));
        fprintf(stderr, "implemented=%d\n", implemented);
        return 0;
    }

    for (nr = 0; nr <= MAX_NR; nr++) {
        uint32_t chain = SECCOMP_RET_ALLOW;
        int any = 1;
        char text[32];

        if (!impl[nr])
            continue;
        for (i = nfilters - 1; i >= 0; i--) {
            struct state s;
            uint32_t r = 0, dummy;
            unsigned classes = 0, zc = 0;

            memset(&s, 0, sizeof s);
            if (run(&filters[i], 0, s, nr, 1, &r, &zc, 0) < 0 ||
                run(&filters[i], 0, s, nr, 0, &dummy, &classes, 0) < 0) {
                fprintf(stderr, "reach: filter %d: cannot interpret it\n", i);
                return 1;
            }
            /* Newest first: a later (older) filter wins only if strictly lower. */
            if (prec(r) < prec(chain))
                chain = r;
            if (!(classes & ((1u << A_ALLOW) | (1u << A_LOG))))
                any = 0;
        }
        int zero_ok = class_of(chain) == A_ALLOW || class_of(chain) == A_LOG;
        reach_zero += zero_ok;
        reach_any += any;
        if (class_of(chain) == A_ERRNO) {
            unsigned e = chain & SECCOMP_RET_DATA;
            if (e == ENOSYS)
                enosys++;
            else if (e == EPERM)
                eperm++;
            else
                other++;
        } else if (!zero_ok) {
            other++;
        }
        if (list) {
            verdict_text(chain, text, sizeof text);
            printf("%d %s %s%s\n", nr, name_of(nr), text, !zero_ok && any ? "+args" : "");
        }
    }
    printf("reachable=%d reachable_zero_args=%d implemented=%d denied_eperm=%d "
           "denied_enosys=%d denied_other=%d filters=%d insns=",
           reach_any, reach_zero, implemented, eperm, enosys, other, nfilters);
    for (i = 0; i < nfilters; i++)
        printf("%s%d", i ? "," : "", filters[i].len);
    printf("%s\n", nfilters ? "" : "0");
    return 0;
}
