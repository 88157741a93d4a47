/* Hold the monitor in a read of the agent's files (built and run by tests/evasion_records.rs).
 *
 * proctor reads what an exec ran (its build-id, its TLS) through /proc/PID/exe and, once the
 * process is gone, through the path the kernel resolved. Whatever is at that path by then is
 * the agent's choice. A blocking open of a named pipe with no writer never returns: a monitor
 * that opens it stops reading the kernel's records for good, and what the agent does next is
 * never judged.
 *
 * Each round keeps the monitor busy first (a child opens NFILES distinct files: a record each),
 * so that it reaches the exec late; then runs a fresh copy of this program, which exits at
 * once, and renames a named pipe over the copy's path.
 *
 *   fifoswap DIR ROUNDS    DIR must exist and be empty; prints nothing, exits 0
 *   fifoswap exit          exit at once (what each copy runs)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NFILES 3000

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void copy_self(const char *to) {
    int in = open("/proc/self/exe", O_RDONLY);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0755);
    if (in < 0 || out < 0)
        die("copy");
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            die("write");
    close(in);
    close(out);
}

static void run(char *const argv[]) {
    pid_t p = fork();
    if (p < 0)
        die("fork");
    if (p == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "exit") == 0)
        return 0;
    if (argc != 3) {
        fprintf(stderr, "usage: fifoswap DIR ROUNDS | fifoswap exit\n");
        return 2;
    }
    const char *dir = argv[1];
    int rounds = atoi(argv[2]);
    char path[4096], pipe_path[4096];
    for (int i = 0; i < NFILES; i++) {
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        if (fd < 0)
            die("create");
        close(fd);
    }
    for (int r = 0; r < rounds; r++) {
        pid_t p = fork();
        if (p < 0)
            die("fork");
        if (p == 0) {
            for (int i = 0; i < NFILES; i++) {
                snprintf(path, sizeof path, "%s/f%d", dir, i);
                int fd = open(path, O_RDONLY);
                if (fd >= 0)
                    close(fd);
            }
            _exit(0);
        }
        int st;
        waitpid(p, &st, 0);
        snprintf(path, sizeof path, "%s/x%d", dir, r);
        snprintf(pipe_path, sizeof pipe_path, "%s/p%d", dir, r);
        copy_self(path);
        if (mkfifo(pipe_path, 0600) != 0)
            die("mkfifo");
        char *args[] = {path, "exit", NULL};
        run(args);
        if (rename(pipe_path, path) != 0)
            die("rename");
    }
    return 0;
}
