"""A docker-like default seccomp profile for the benchmark's OCI specs.

An allowlist: every x86_64 syscall an ordinary program uses is allowed
(SCMP_ACT_ALLOW) and anything else fails with EPERM (defaultAction
SCMP_ACT_ERRNO). What is left out mirrors what container engines deny by
default: kernel modules, kexec, mount and namespace calls, ptrace and
process_vm_*, keyrings, bpf/perf, clock and time setting, swap, reboot,
quotas, io_uring, userfaultfd and the obsolete calls. Unlike docker's
profile there are no argument filters (clone, personality and socket are
allowed whole), so every runtime compiles the same flat list.
"""

ALLOWED = """
accept accept4 access adjtimex alarm arch_prctl bind brk capget capset chdir
chmod chown chroot clock_getres clock_gettime clock_nanosleep clone clone3
close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate
fanotify_mark fchdir fchmod fchmodat fchown fchownat fcntl fdatasync
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstatfs fsync
ftruncate futex futex_waitv futimesat get_robust_list get_thread_area getcpu
getcwd getdents getdents64 getegid geteuid getgid getgroups getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresuid getrlimit getrusage getsid getsockname getsockopt gettid
gettimeofday getuid getxattr inotify_add_watch inotify_init inotify_init1
inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents io_setup
io_submit ioctl ioprio_get ioprio_set kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lgetxattr link linkat
listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise
membarrier memfd_create migrate_pages mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap modify_ldt mprotect mq_getsetattr mq_notify
mq_open mq_timedreceive mq_timedsend mq_unlink mremap msgctl msgget msgrcv
msgsnd msync munlock munlockall munmap nanosleep newfstatat open openat
openat2 pause personality pidfd_getfd pidfd_open pidfd_send_signal pipe pipe2
pkey_alloc pkey_free pkey_mprotect poll ppoll prctl pread64 preadv preadv2
prlimit64 process_madvise pselect6 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recvfrom recvmmsg recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_tgsigqueueinfo sched_get_priority_max
sched_get_priority_min sched_getaffinity sched_getattr sched_getparam
sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget
semop semtimedop sendfile sendmmsg sendmsg sendto set_robust_list
set_thread_area set_tid_address setfsgid setfsuid setgid setgroups
sethostname setdomainname setitimer setpgid setpriority setregid setresgid
setresuid setreuid setrlimit setsid setsockopt setuid setxattr shmat shmctl
shmdt shmget shutdown sigaltstack signalfd signalfd4 socket socketpair splice
stat statfs statx symlink symlinkat sync sync_file_range syncfs sysinfo
syslog tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime
times tkill truncate umask uname unlink unlinkat utime utimensat utimes vfork
vhangup vmsplice wait4 waitid write writev
""".split()


def profile():
    """The linux.seccomp object for config.json."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": sorted(set(ALLOWED)), "action": "SCMP_ACT_ALLOW"}],
    }
