/* Stop the file system server the agent runs, under proctor's reads (built and run by
 * tests/evasion_records.rs).
 *
 * proctor follows a utimensat by a stat of the file stamped, here one on the agent's FUSE
 * mount, and an exec by a read of what ran (the test runs a program from the mount just
 * before). A FUSE server that is stopped answers neither: a monitor that makes those calls on
 * its loop stops reading the kernel's records until the server is continued, and then only if
 * the agent lets it. (This program does not run from the mount: a page of it read after the
 * stop would wait for the server as well.)
 *
 *   fusestop PID FILE    set FILE's times to 2001, SIGSTOP PID (the server), live 0.3 s
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fusestop PID FILE\n");
        return 2;
    }
    struct timespec ts[2] = {{1000000000L, 0}, {1000000000L, 0}};
    if (utimensat(AT_FDCWD, argv[2], ts, 0) != 0) {
        perror("utimensat");
        return 1;
    }
    if (kill(atoi(argv[1]), SIGSTOP) != 0) {
        perror("kill");
        return 1;
    }
    usleep(300000);
    return 0;
}
