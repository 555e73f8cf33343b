/* The hardening probe: run inside a container, it tries the classic ways out and
 * prints one line per attempt, "<probe> denied <errno-name>" or "<probe> ALLOWED
 * <detail>". `probe syscalls` calls every syscall number with zero arguments in a
 * child of its own and prints "<nr> <outcome>", outcome EPERM, ENOSYS, ok, errno:N,
 * signal:N, exit or timeout; the test diffs the EPERM sets of two engines.
 *
 * Compiled statically at test time (gcc -static), so it runs in any rootfs.
 * Every attempt that would change something is chosen to be harmless when it
 * succeeds: opens are not followed by writes, the clock is set to what it reads.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, long rc, int err, const char *detail) {
    if (rc < 0)
        printf("%s denied %s\n", name, strerrorname_np(err) ? strerrorname_np(err) : "?");
    else
        printf("%s ALLOWED %s\n", name, detail ? detail : "");
    fflush(stdout);
}

#define TRY(name, expr, detail) do { errno = 0; long rc_ = (long)(expr); \
    report(name, rc_, errno, detail); } while (0)

static long open_only(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd >= 0) close(fd);
    return fd;
}

/* Read a few bytes: a masked file (bound to /dev/null) reads 0 bytes, counted as denied. */
static long read_some(const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long n = read(fd, buf, sizeof buf);
    int saved = errno;
    close(fd);
    if (n == 0) { errno = ENODATA; return -1; }
    errno = saved;
    return n;
}

static long mknod_and_open(const char *path, mode_t type, unsigned major, unsigned minor) {
    unlink(path);
    if (mknod(path, type | 0600, makedev(major, minor)) < 0) return -1;
    long rc = open_only(path, O_RDONLY);
    int saved = errno;
    unlink(path);
    errno = saved;
    return rc;
}

static long connect_unix(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    long rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Is a socket with this name anywhere in the container's view of unix sockets? */
static long socket_listed(const char *name) {
    FILE *f = fopen("/proc/net/unix", "r");
    if (!f) return -1;
    char line[512];
    long found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, name)) found = 1;
    fclose(f);
    if (!found) { errno = ENOENT; return -1; }
    return 0;
}

static long set_clock_to_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return clock_settime(CLOCK_REALTIME, &now);
}

static long settimeofday_now(void) {
    struct timeval now;
    gettimeofday(&now, NULL);
    return settimeofday(&now, NULL);
}

/* Set the clock's frequency to what it is: needs CAP_SYS_TIME, changes nothing. */
static long adjtimex_same(void) {
    struct timex t = {0};
    if (adjtimex(&t) < 0) return -1;
    t.modes = ADJ_FREQUENCY;
    return adjtimex(&t);
}

static long sethostname_same(void) {
    char name[256] = {0};
    gethostname(name, sizeof name - 1);
    return sethostname(name, strlen(name));
}

static long unshare_in_child(int flags) {
    pid_t pid = fork();
    if (pid == 0) _exit(unshare(flags) < 0 ? errno : 0);
    int status;
    waitpid(pid, &status, 0);
    int err = WEXITSTATUS(status);
    if (err) { errno = err; return -1; }
    return 0;
}

static long ptrace_pid(pid_t target) {
    long rc = ptrace(PTRACE_ATTACH, target, 0, 0);
    if (rc == 0) { int saved = errno; waitpid(target, NULL, __WALL); ptrace(PTRACE_DETACH, target, 0, 0); errno = saved; }
    return rc;
}

static int escapes(int argc, char **argv) {
    pid_t host_pid = argc > 2 ? atoi(argv[2]) : 1;
    unsigned blk_major = 7, blk_minor = 0;
    if (argc > 3) sscanf(argv[3], "%u:%u", &blk_major, &blk_minor);
    const char *api = argc > 4 ? argv[4] : "/run/knarr/knarr.sock";
    const char *api_name = strrchr(api, '/') ? strrchr(api, '/') + 1 : api;

    mkdir("/tmp", 01777);
    mkdir("/tmp/probe-mnt", 0700);
    TRY("mount_tmpfs", mount("none", "/tmp/probe-mnt", "tmpfs", 0, NULL), "tmpfs mounted");
    TRY("mount_proc_again", mount("proc", "/tmp/probe-mnt", "proc", 0, NULL), "proc mounted");
    TRY("umount_masked_kcore", umount2("/proc/kcore", MNT_DETACH), "/proc/kcore unmasked");
    TRY("remount_proc_sys_rw", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL),
        "/proc/sys remounted rw");
    TRY("unshare_user", unshare_in_child(CLONE_NEWUSER), "new user namespace");
    TRY("unshare_mount", unshare_in_child(CLONE_NEWNS), "new mount namespace");
    TRY("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -4 /* user keyring */, 0),
        "keyring reached");
    TRY("ptrace_host_pid", ptrace_pid(host_pid), "attached to a host pid");
    TRY("signal_host_pid", kill(host_pid, 0), "host pid signalled");
    TRY("write_proc_sys", open_only("/proc/sys/kernel/domainname", O_WRONLY),
        "/proc/sys writable");
    TRY("write_sysrq_trigger", open_only("/proc/sysrq-trigger", O_WRONLY),
        "/proc/sysrq-trigger writable");
    TRY("write_core_pattern", open_only("/proc/sys/kernel/core_pattern", O_WRONLY),
        "core_pattern writable");
    TRY("write_sys", open_only("/sys/kernel/uevent_helper", O_WRONLY), "/sys writable");
    TRY("write_sys_mm", open_only("/sys/kernel/mm/transparent_hugepage/enabled", O_WRONLY),
        "/sys writable");
    TRY("write_sys_module_param", open_only("/sys/module/kernel/parameters/panic", O_WRONLY),
        "/sys writable");
    TRY("mkdir_sys_cgroup", mkdir("/sys/fs/cgroup/probe", 0700), "cgroupfs writable");
    rmdir("/sys/fs/cgroup/probe");
    TRY("mknod_char", mknod("/tmp/probe-null", S_IFCHR | 0600, makedev(1, 3)), "node made");
    unlink("/tmp/probe-null");
    TRY("open_dev_mem", mknod_and_open("/tmp/probe-mem", S_IFCHR, 1, 1), "/dev/mem opened");
    TRY("open_raw_block", mknod_and_open("/tmp/probe-blk", S_IFBLK, blk_major, blk_minor),
        "host block device opened");
    TRY("init_module", syscall(SYS_init_module, NULL, 0, ""), "module call reached the kernel");
    TRY("finit_module", syscall(SYS_finit_module, -1, "", 0), "module call reached the kernel");
    TRY("delete_module", syscall(SYS_delete_module, "probe_no_such_module", O_NONBLOCK),
        "module call reached the kernel");
    TRY("settimeofday", settimeofday_now(), "clock set");
    TRY("clock_settime", set_clock_to_now(), "clock set");
    TRY("adjtimex_set", adjtimex_same(), "clock adjusted");
    TRY("sethostname", sethostname_same(), "hostname set");
    TRY("read_proc_kcore", read_some("/proc/kcore"), "kernel memory read");
    TRY("read_proc_keys", read_some("/proc/keys"), "keys listed");
    TRY("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, O_RDONLY),
        "handle call reached the kernel");
    TRY("bpf", syscall(SYS_bpf, 0, NULL, 0), "bpf reached the kernel");
    TRY("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0),
        "perf reached the kernel");
    TRY("iopl", syscall(SYS_iopl, 3), "port I/O allowed");
    TRY("reboot", syscall(SYS_reboot, 0, 0, 0, NULL), "reboot reached the kernel");
    TRY("swapon", syscall(SYS_swapon, "/nonexistent", 0), "swapon reached the kernel");
    TRY("acct", syscall(SYS_acct, NULL), "accounting switched");
    TRY("userfaultfd", syscall(SYS_userfaultfd, 0), "userfaultfd made");
    TRY("api_socket_path", connect_unix(api), "API socket reached");
    TRY("api_socket_listed", socket_listed(api_name), "API socket visible");
    TRY("docker_socket_path", connect_unix("/var/run/docker.sock"), "docker socket reached");
    return 0;
}

/* Every syscall number with zero arguments, each in a child with a timer. */
static int syscalls(int argc, char **argv) {
    int top = argc > 2 ? atoi(argv[2]) : 470;
    for (int nr = 0; nr <= top; nr++) {
        int fds[2];
        if (pipe(fds) < 0) { perror("pipe"); return 1; }
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            alarm(1);
            errno = 0;
            long rc = syscall(nr, 0, 0, 0, 0, 0, 0);
            int err = errno;
            char out[32];
            int n = snprintf(out, sizeof out, "%ld %d\n", rc, err);
            write(fds[1], out, n);
            _exit(0);
        }
        close(fds[1]);
        char buf[64] = {0};
        int got = 0, n;
        while (got < (int)sizeof buf - 1 && (n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
            got += n;
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        long rc; int err;
        if (got > 0 && sscanf(buf, "%ld %d", &rc, &err) == 2) {
            if (rc >= 0) printf("%d ok\n", nr);
            else if (err == EPERM) printf("%d EPERM\n", nr);
            else if (err == ENOSYS) printf("%d ENOSYS\n", nr);
            else printf("%d errno:%d\n", nr, err);
        } else if (WIFSIGNALED(status)) {
            printf("%d %s\n", nr, WTERMSIG(status) == SIGALRM ? "timeout" : "signal");
        } else {
            printf("%d exit\n", nr);
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "syscalls") == 0) return syscalls(argc, argv);
    if (argc > 1 && strcmp(argv[1], "escapes") == 0) return escapes(argc, argv);
    fprintf(stderr, "usage: probe escapes [host-pid] [blk-major:minor] [api-socket] | "
            "probe syscalls [top]\n");
    return 2;
}
