/* A program outside the project: built against an installed liburingsync
 * with pkg-config, it copies one small tree and checks the copy.
 * Usage: consumer SRC DST; exit 0 only when DST/hello matches SRC/hello. */
#include <stdio.h>
#include <string.h>
#include <uringsync/uringsync.h>

static int read_file(const char *dir, char *buf, size_t size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/hello", dir);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, size - 1, f);
  buf[n] = '\0';
  fclose(f);
  return (int)n;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: consumer SRC DST\n");
    return 2;
  }
  if (usync_version_number() != USYNC_VERSION_NUMBER) {
    fprintf(stderr, "header %d, library %u\n", USYNC_VERSION_NUMBER, usync_version_number());
    return 1;
  }
  usync_options o;
  usync_options_init(&o);
  o.flags = USYNC_PRESERVE;
  usync_engine *e = NULL;
  int ret = usync_engine_create(&o, &e);
  if (ret == 0) ret = usync_copy_tree(e, argv[1], argv[2]);
  usync_engine_destroy(e);
  if (ret != 0) {
    fprintf(stderr, "copy: %s\n", strerror(-ret));
    return 1;
  }
  char a[256], b[256];
  if (read_file(argv[1], a, sizeof a) < 0 || read_file(argv[2], b, sizeof b) < 0 || strcmp(a, b) != 0) {
    fprintf(stderr, "the copy differs\n");
    return 1;
  }
  printf("liburingsync %s\n", usync_version_string());
  return 0;
}
