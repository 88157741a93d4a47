/* Stop the file system server the agent runs, then make proctor look into it (built and run by
 * tests/evasion_records.rs).
 *
 * proctor follows a utimensat by a stat of the file stamped, by its path, a moment later. This
 * program stops the agent's FUSE server first, then, N times, stamps a local file through a
 * symlink and at once points that symlink at the stopped mount (a rename: nothing here asks
 * the server anything). proctor's stat then waits for a server that never answers: made on its
 * loop, it stops proctor reading the kernel's records until the agent continues the server.
 *
 *   fusestop PID MNT DIR N    SIGSTOP PID (the server of MNT); DIR must exist and be empty
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: fusestop PID MNT DIR N\n");
        return 2;
    }
    const char *mnt = argv[2], *dir = argv[3];
    int n = atoi(argv[4]);
    if (kill(atoi(argv[1]), SIGSTOP) != 0)
        die("kill");
    struct timespec ts[2] = {{1000000000L, 0}, {1000000000L, 0}};
    char real[4096], file[4096], link[4096], next[4096], via[4096];
    for (int i = 0; i < n; i++) {
        snprintf(real, sizeof real, "%s/real%d", dir, i);
        snprintf(file, sizeof file, "%s/f", real);
        snprintf(link, sizeof link, "%s/l%d", dir, i);
        snprintf(next, sizeof next, "%s/m%d", dir, i);
        snprintf(via, sizeof via, "%s/f", link);
        if (mkdir(real, 0755) != 0)
            die("mkdir");
        int fd = open(file, O_WRONLY | O_CREAT, 0644);
        if (fd < 0)
            die("create");
        close(fd);
        if (symlink(real, link) != 0 || symlink(mnt, next) != 0)
            die("symlink");
        if (utimensat(AT_FDCWD, via, ts, 0) != 0)
            die("utimensat");
        if (rename(next, link) != 0)
            die("rename");
    }
    return 0;
}
