/* Stack comparison: the smallest libh2o (evloop) HTTP/1.1 server that answers
 * every request with a fixed 128-byte JSON body, one thread, keep-alive.
 * Build: gcc -O2 h2o_fixed.c -o h2o_fixed $(pkg-config --cflags --libs libh2o-evloop)
 * Run: ./h2o_fixed PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define H2O_USE_LIBUV 0
#include <h2o.h>

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;
static char body[128];

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  (void)self;
  req->res.status = 200;
  req->res.reason = "OK";
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
  h2o_send_inline(req, body, sizeof body);
  return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err) {
  h2o_socket_t *sock;
  if (err != NULL) return;
  if ((sock = h2o_evloop_socket_accept(listener)) == NULL) return;
  h2o_accept(&accept_ctx, sock);
}

int main(int argc, char **argv) {
  memset(body, 'x', sizeof body);
  h2o_config_init(&config);
  h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
  h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
  handler->on_req = on_req;
  h2o_context_init(&ctx, h2o_evloop_create(), &config);
  accept_ctx.ctx = &ctx;
  accept_ctx.hosts = config.hosts;

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons((uint16_t)atoi(argc > 1 ? argv[1] : "8080"));
  int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, SOMAXCONN) != 0) return 1;
  h2o_socket_t *sock = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
  h2o_socket_read_start(sock, on_accept);
  while (h2o_evloop_run(ctx.loop, INT32_MAX) == 0) {
  }
  return 0;
}
