/* A login as pgfailover makes it, with libssh (the library pgfailover uses), for
 * tests/helm/run.sh: the chart's private key, the chart's known_hosts checked under a node's DNS
 * name, over a TCP connection to ADDRESS:PORT (a loopback sshd that uses the chart's host key).
 * The socket is connected here and handed to libssh (SSH_OPTIONS_FD), so the name is used for
 * the host-key check only and is never resolved.
 *
 *   ssh_login ADDRESS PORT NAME NAME_PORT KNOWN_HOSTS PRIVATE_KEY USER
 *
 * Exit 0 after `id -un` ran on the server; 3 when the host key is not the one known_hosts has
 * under NAME (NAME_PORT 22: plain NAME, else [NAME]:NAME_PORT); other non-zero on any failure.
 */
#include <arpa/inet.h>
#include <libssh/libssh.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: ssh_login ADDRESS PORT NAME NAME_PORT KNOWN_HOSTS PRIVATE_KEY USER\n");
    return 2;
  }
  const char *address = argv[1], *name = argv[3], *known_hosts = argv[5], *key_file = argv[6],
             *user = argv[7];
  int port = atoi(argv[2]), name_port = atoi(argv[4]);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in to = {0};
  to.sin_family = AF_INET;
  to.sin_port = htons((unsigned short)port);
  if (fd < 0 || inet_pton(AF_INET, address, &to.sin_addr) != 1 ||
      connect(fd, (struct sockaddr*)&to, sizeof to) != 0) {
    perror("connect");
    return 1;
  }
  ssh_session session = ssh_new();
  int no = 0;
  long timeout = 10;
  ssh_options_set(session, SSH_OPTIONS_FD, &fd);
  ssh_options_set(session, SSH_OPTIONS_HOST, name);
  ssh_options_set(session, SSH_OPTIONS_PORT, &name_port);
  ssh_options_set(session, SSH_OPTIONS_USER, user);
  ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout);
  /* As pgfailover: only the configured known_hosts counts, no ~/.ssh/config. */
  ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &no);
  ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, known_hosts);
  ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, known_hosts);
  if (ssh_connect(session) != SSH_OK) {
    fprintf(stderr, "ssh_connect: %s\n", ssh_get_error(session));
    return 1;
  }
  enum ssh_known_hosts_e known = ssh_session_is_known_server(session);
  if (known != SSH_KNOWN_HOSTS_OK) {
    fprintf(stderr, "host key of %s not accepted (ssh_session_is_known_server: %d)\n", name,
            (int)known);
    return 3;
  }
  ssh_key key = NULL;
  if (ssh_pki_import_privkey_file(key_file, NULL, NULL, NULL, &key) != SSH_OK) {
    fprintf(stderr, "libssh cannot import the private key %s\n", key_file);
    return 4;
  }
  if (ssh_userauth_publickey(session, NULL, key) != SSH_AUTH_SUCCESS) {
    fprintf(stderr, "public key authentication as %s failed: %s\n", user, ssh_get_error(session));
    return 5;
  }
  ssh_channel channel = ssh_channel_new(session);
  if (channel == NULL || ssh_channel_open_session(channel) != SSH_OK ||
      ssh_channel_request_exec(channel, "id -un") != SSH_OK) {
    fprintf(stderr, "exec: %s\n", ssh_get_error(session));
    return 6;
  }
  char out[256];
  int n = ssh_channel_read(channel, out, sizeof out - 1, 0);
  out[n > 0 ? n : 0] = '\0';
  ssh_channel_send_eof(channel);
  int status = ssh_channel_get_exit_status(channel);
  ssh_channel_close(channel);
  ssh_channel_free(channel);
  ssh_key_free(key);
  ssh_disconnect(session);
  ssh_free(session);
  printf("logged in to %s as %s", name, out);
  return status == 0 ? 0 : 7;
}
