/*
 * The syscall floor from DESIGN.md, as a benchmark peer: per file only
 * openat, read, openat(O_CREAT|O_EXCL), write, close, close — no stat, no
 * metadata, no error handling worth the name — with the top-level
 * directories of SRC shared out over N threads.  Not a copier: a yardstick.
 * Each thread copies whole top-level subtrees (recursing with mkdirat); files
 * in SRC itself are copied by the main thread.
 *
 *   cc -O2 -pthread -o floor floor.c && ./floor SRC DST THREADS
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int src_root, dst_root;
static char **dirs;
static int ndirs, next_dir;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void copy_dir_files(int sd, int dd, int recurse) {
  static __thread char buf[1 << 20];
  DIR *dir = fdopendir(dup(sd));
  struct dirent *e;
  rewinddir(dir); /* the dup shares sd's offset, which an earlier listing may have moved */
  while ((e = readdir(dir)) != NULL) {
    if (recurse && e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      mkdirat(dd, e->d_name, 0755);
      int csd = openat(sd, e->d_name, O_RDONLY | O_DIRECTORY);
      int cdd = openat(dd, e->d_name, O_RDONLY | O_DIRECTORY);
      copy_dir_files(csd, cdd, 1);
      close(csd);
      close(cdd);
      continue;
    }
    if (e->d_type != DT_REG) continue;
    int in = openat(sd, e->d_name, O_RDONLY);
    int out = openat(dd, e->d_name, O_WRONLY | O_CREAT | O_EXCL, 0644);
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) (void)!write(out, buf, (size_t)n);
    close(out);
    close(in);
  }
  closedir(dir);
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&mu);
    int i = next_dir++;
    pthread_mutex_unlock(&mu);
    if (i >= ndirs) return NULL;
    mkdirat(dst_root, dirs[i], 0755);
    int sd = openat(src_root, dirs[i], O_RDONLY | O_DIRECTORY);
    int dd = openat(dst_root, dirs[i], O_RDONLY | O_DIRECTORY);
    copy_dir_files(sd, dd, 1);
    close(sd);
    close(dd);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: floor SRC DST THREADS\n");
    return 2;
  }
  mkdir(argv[2], 0755);
  src_root = open(argv[1], O_RDONLY | O_DIRECTORY);
  dst_root = open(argv[2], O_RDONLY | O_DIRECTORY);
  if (src_root < 0 || dst_root < 0) return 1;
  DIR *d = fdopendir(dup(src_root));
  struct dirent *e;
  int cap = 1024;
  dirs = malloc(sizeof *dirs * (size_t)cap);
  while ((e = readdir(d)) != NULL) {
    if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (ndirs == cap) dirs = realloc(dirs, sizeof *dirs * (size_t)(cap *= 2));
    dirs[ndirs++] = strdup(e->d_name);
  }
  closedir(d);
  int nt = atoi(argv[3]);
  pthread_t t[256];
  if (nt < 1 || nt > 256) nt = 2;
  for (int i = 0; i < nt; i++) pthread_create(&t[i], NULL, worker, NULL);
  copy_dir_files(src_root, dst_root, 0);
  for (int i = 0; i < nt; i++) pthread_join(t[i], NULL);
  return 0;
}
