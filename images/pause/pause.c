/* The sandbox ("pause") process of a pod on the tests' real node (kelp-testenv): it holds the
 * pod's namespaces, reaps the orphans it inherits as the pod's init, and ends on SIGINT or
 * SIGTERM. Clusters do not use it: their container runtime brings its own. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction end = {.sa_handler = stop};
  struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  sigaction(SIGINT, &end, 0);
  sigaction(SIGTERM, &end, 0);
  sigaction(SIGCHLD, &child, 0);
  for (;;) {
    pause();
  }
}
