/* test_config: the settings table through flags, SPYPIXEL_* variables and a --config file. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

extern char **environ;

static char dir[64];

/* One load: the config, what was left over and the error text. */
typedef struct {
    sp_config_t cfg;
    char *rest[128];
    int n_rest;
    char err[512];
    int rc;
} load_t;

/* Loads ARGV (NULL-terminated) over the defaults. */
static load_t *load(const char **argv)
{
    load_t *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    int argc = 0;
    while (argv && argv[argc])
        argc++;
    assert_true(argc < 128);
    sp_config_defaults(&l->cfg);
    l->n_rest = -1;
    l->rc =
        sp_config_load(&l->cfg, argc, (char **)argv, l->rest, &l->n_rest, l->err, sizeof(l->err));
    return l;
}

static void done(load_t *l)
{
    sp_config_free(&l->cfg);
    free(l);
}

/* Loads ARGV and expects an error mentioning WANT. */
static void load_fails(const char **argv, const char *want)
{
    load_t *l = load(argv);
    if (0 == l->rc)
        fail_msg("'%s ...' loaded; expected an error about '%s'", argv[0], want);
    assert_int_equal(-1, l->rc);
    if (!strstr(l->err, want))
        fail_msg("error '%s' does not mention '%s'", l->err, want);
    done(l);
}

static void write_file(const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void clear_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e; e++)
            if (0 == strncmp(*e, "SPYPIXEL_", 9)) {
                size_t n = strcspn(*e, "=");
                if (n < sizeof(name)) {
                    memcpy(name, *e, n);
                    name[n] = '\0';
                }
                break;
            }
        if (!*name)
            return;
        unsetenv(name);
    }
}

static int group_setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/spypixel-test-config-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

/* Each test starts with no SPYPIXEL_* variable, whatever the runner's environment holds. */
static int setup(void **state)
{
    clear_env();
    return 0;
}

static int teardown(void **state)
{
    clear_env();
    return 0;
}

static void test_defaults(void **state)
{
    sp_config_t cfg;
    memset(&cfg, 0x5a, sizeof(cfg));
    sp_config_defaults(&cfg);
    assert_string_equal("127.0.0.1:8080", cfg.listen[0]);
    assert_string_equal("./data", cfg.data_dir);
    assert_string_equal("sqlite", cfg.store);
    assert_string_equal("", cfg.pg);
    assert_string_equal("", cfg.apple_egress);
    assert_string_equal("", cfg.public_url);
    assert_string_equal("info", cfg.log_level);
    assert_int_equal(0, cfg.n_geoip);
    assert_int_equal(0, cfg.n_trusted_proxy);
    assert_int_equal(0, cfg.n_webhook);
    assert_int_equal(0, cfg.threads);
    assert_int_equal(4096, cfg.max_connections);
    assert_int_equal(15, cfg.timeout);
    assert_int_equal(16384, cfg.batch_max);
    assert_int_equal(0, cfg.retention);
    assert_int_equal(0, cfg.self_ip_window);
    assert_false(cfg.anonymize_ip);
    assert_false(cfg.no_geoip);
    assert_false(cfg.sync_full);
    assert_false(cfg.auto_create_campaigns);
    assert_int_equal(100, cfg.unknown_campaigns_max);
    assert_int_equal(10000, cfg.unknown_opens_max);
    assert_string_equal("logfmt", cfg.log_format);
    assert_string_equal("", cfg.tls_cert);
    assert_int_equal(1, cfg.n_listen);
    assert_int_equal(10, cfg.header_timeout);
    assert_int_equal(256, cfg.max_connections_per_ip);
    assert_int_equal(64, cfg.body_memory);
    assert_false(cfg.metrics_public);
    sp_config_free(&cfg);

    /* Loading nothing keeps them. */
    load_t *l = load((const char *[]){NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(0, l->n_rest);
    assert_string_equal("127.0.0.1:8080", l->cfg.listen[0]);
    assert_int_equal(4096, l->cfg.max_connections);
    done(l);
}

static void test_flags(void **state)
{
    load_t *l = load((const char *[]){"--listen",
                                      "0.0.0.0:9000",
                                      "--data=/var/lib/spypixel",
                                      "--store",
                                      "postgres",
                                      "--pg=host=/run/pg dbname=spy",
                                      "--apple-egress",
                                      "/etc/egress.csv",
                                      "--public-url=https://t.example.com",
                                      "--log-level",
                                      "debug",
                                      "--threads",
                                      "4",
                                      "--max-connections=100",
                                      "--timeout",
                                      "30",
                                      "--batch-max=7",
                                      "--retention",
                                      "90",
                                      "--self-ip-window=10",
                                      "--auto-create-campaigns",
                                      "--unknown-campaigns-max",
                                      "0",
                                      "--unknown-opens-max=25",
                                      NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(0, l->n_rest);
    assert_string_equal("0.0.0.0:9000", l->cfg.listen[0]);
    assert_string_equal("/var/lib/spypixel", l->cfg.data_dir);
    assert_string_equal("postgres", l->cfg.store);
    /* Only the first '=' separates: the value keeps its own. */
    assert_string_equal("host=/run/pg dbname=spy", l->cfg.pg);
    assert_string_equal("/etc/egress.csv", l->cfg.apple_egress);
    assert_string_equal("https://t.example.com", l->cfg.public_url);
    assert_string_equal("debug", l->cfg.log_level);
    assert_int_equal(4, l->cfg.threads);
    assert_int_equal(100, l->cfg.max_connections);
    assert_int_equal(30, l->cfg.timeout);
    assert_int_equal(7, l->cfg.batch_max);
    assert_int_equal(90, l->cfg.retention);
    assert_int_equal(10, l->cfg.self_ip_window);
    assert_true(l->cfg.auto_create_campaigns);
    assert_int_equal(0, l->cfg.unknown_campaigns_max);
    assert_int_equal(25, l->cfg.unknown_opens_max);
    done(l);

    /* The last of a repeated setting wins; an empty value is a value. */
    l = load((const char *[]){"--data", "a", "--data=b", "--public-url=", NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("b", l->cfg.data_dir);
    done(l);

    /* A repeated list setting adds to the list: --listen serves several addresses. */
    l = load((const char *[]){"--listen", "a:1", "--listen=https://b:2", "--public-url=", NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(2, l->cfg.n_listen);
    assert_string_equal("a:1", l->cfg.listen[0]);
    assert_string_equal("https://b:2", l->cfg.listen[1]);
    assert_string_equal("", l->cfg.public_url);
    done(l);

    /* The value after a flag is taken as it is, even when it looks like a flag. */
    l = load((const char *[]){"--data", "--threads", NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("--threads", l->cfg.data_dir);
    assert_int_equal(0, l->cfg.threads);
    done(l);
}

static void test_bools(void **state)
{
    load_t *l = load((const char *[]){"--anonymize-ip", "--no-geoip", "--sync-full", NULL});
    assert_int_equal(0, l->rc);
    assert_true(l->cfg.anonymize_ip);
    assert_true(l->cfg.no_geoip);
    assert_true(l->cfg.sync_full);
    done(l);

    const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        char flag[32];
        snprintf(flag, sizeof(flag), "--sync-full=%s", yes[i]);
        l = load((const char *[]){flag, NULL});
        assert_int_equal(0, l->rc);
        assert_true(l->cfg.sync_full);
        done(l);
        snprintf(flag, sizeof(flag), "--sync-full=%s", no[i]);
        l = load((const char *[]){"--sync-full", flag, NULL});
        assert_int_equal(0, l->rc);
        assert_false(l->cfg.sync_full);
        done(l);
    }

    /* A bare boolean flag does not swallow the next argument. */
    l = load((const char *[]){"--anonymize-ip", "false", NULL});
    assert_int_equal(0, l->rc);
    assert_true(l->cfg.anonymize_ip);
    assert_int_equal(1, l->n_rest);
    assert_string_equal("false", l->rest[0]);
    done(l);

    load_fails((const char *[]){"--sync-full=maybe", NULL}, "--sync-full");
    load_fails((const char *[]){"--no-geoip=", NULL}, "--no-geoip");
    load_fails((const char *[]){"--anonymize-ip=TRUE ", NULL}, "--anonymize-ip");
}

static void test_lists(void **state)
{
    load_t *l =
        load((const char *[]){"--geoip", "a.mmdb", "--webhook=https://h/1", "--geoip=b.mmdb",
                              "--webhook", "https://h/2", "--geoip", "c.mmdb", NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(3, l->cfg.n_geoip);
    assert_string_equal("a.mmdb", l->cfg.geoip[0]);
    assert_string_equal("b.mmdb", l->cfg.geoip[1]);
    assert_string_equal("c.mmdb", l->cfg.geoip[2]);
    assert_int_equal(2, l->cfg.n_webhook);
    assert_string_equal("https://h/1", l->cfg.webhook[0]);
    assert_string_equal("https://h/2", l->cfg.webhook[1]);
    /* The strings are copies, not pointers into argv. */
    char arg[] = "x.mmdb";
    done(l);
    l = load((const char *[]){"--geoip", arg, NULL});
    arg[0] = 'y';
    assert_string_equal("x.mmdb", l->cfg.geoip[0]);
    sp_config_free(&l->cfg);
    assert_int_equal(0, l->cfg.n_geoip);
    assert_int_equal(0, l->cfg.n_webhook);
    done(l);

    /* SP_CONFIG_LIST_MAX values fit; one more is an error. */
    const char *argv[2 * (SP_CONFIG_LIST_MAX + 1) + 1];
    for (int i = 0; i < SP_CONFIG_LIST_MAX + 1; i++) {
        argv[2 * i] = "--webhook";
        argv[2 * i + 1] = "https://example.com/hook";
    }
    argv[2 * SP_CONFIG_LIST_MAX] = NULL;
    l = load(argv);
    assert_int_equal(0, l->rc);
    assert_int_equal(SP_CONFIG_LIST_MAX, l->cfg.n_webhook);
    done(l);
    argv[2 * SP_CONFIG_LIST_MAX] = "--webhook";
    argv[2 * SP_CONFIG_LIST_MAX + 2] = NULL;
    load_fails(argv, "--webhook");
}

static void test_cidr_list(void **state)
{
    load_t *l = load((const char *[]){"--trusted-proxy", "10.0.0.0/8", "--trusted-proxy=::1",
                                      "--trusted-proxy", "2001:db8::/32", NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(3, l->cfg.n_trusted_proxy);
    assert_true(l->cfg.trusted_proxy[0].addr.v4);
    assert_int_equal(96 + 8, l->cfg.trusted_proxy[0].prefix);
    assert_int_equal(10, l->cfg.trusted_proxy[0].addr.b[12]);
    assert_false(l->cfg.trusted_proxy[1].addr.v4);
    assert_int_equal(128, l->cfg.trusted_proxy[1].prefix);
    assert_int_equal(32, l->cfg.trusted_proxy[2].prefix);

    sp_net_addr_t a;
    assert_int_equal(0, sp_net_parse("10.20.30.40", &a));
    assert_true(sp_net_in_cidr(&a, &l->cfg.trusted_proxy[0]));
    assert_false(sp_net_in_cidr(&a, &l->cfg.trusted_proxy[1]));
    done(l);

    load_fails((const char *[]){"--trusted-proxy", "10.0.0.0/33", NULL}, "10.0.0.0/33");
    load_fails((const char *[]){"--trusted-proxy=proxy.example.com", NULL}, "--trusted-proxy");
    load_fails((const char *[]){"--trusted-proxy", "", NULL}, "--trusted-proxy");
}

static void test_bad_values(void **state)
{
    load_fails((const char *[]){"--threads", "abc", NULL}, "--threads");
    load_fails((const char *[]){"--threads", "-1", NULL}, "'-1'");
    load_fails((const char *[]){"--threads=4x", NULL}, "'4x'");
    load_fails((const char *[]){"--threads=", NULL}, "--threads");
    load_fails((const char *[]){"--timeout", "2147483648", NULL}, "--timeout");
    load_fails((const char *[]){"--timeout", "99999999999999999999999", NULL}, "--timeout");
    load_fails((const char *[]){"--retention", "1.5", NULL}, "--retention");
    load_fails((const char *[]){"--body-memory", "8", NULL}, "--body-memory: at least 9");

    load_t *l = load((const char *[]){"--timeout", "2147483647", "--retention", "0", NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(2147483647, l->cfg.timeout);
    assert_int_equal(0, l->cfg.retention);
    done(l);

    /* A value flag at the end has nothing to take. */
    load_fails((const char *[]){"--listen", NULL}, "--listen needs a value");
    load_fails((const char *[]){"--geoip", NULL}, "--geoip");

    /* Strings longer than their field are refused, not cut. */
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    load_fails((const char *[]){"--public-url", big, NULL}, "--public-url: value too long");
    load_fails((const char *[]){"--data", big, NULL}, "--data: value too long");
    char fits[128];
    memset(fits, 'x', sizeof(fits) - 1);
    fits[sizeof(fits) - 1] = '\0';
    l = load((const char *[]){"--listen", fits, NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal(fits, l->cfg.listen[0]);
    done(l);
}

static void test_rest(void **state)
{
    /* Subcommand arguments and flags the table does not know pass through, in order. */
    load_t *l =
        load((const char *[]){"add", "--name", "Spring", "--listen", "1.2.3.4:80", "-f", "--force",
                              "--role=admin", "pos", "--", "--threads", "9", "--", NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("1.2.3.4:80", l->cfg.listen[0]);
    assert_int_equal(0, l->cfg.threads); /* after "--" it is an argument */
    const char *want[] = {"add",          "--name", "Spring",    "-f", "--force",
                          "--role=admin", "pos",    "--threads", "9",  "--"};
    assert_int_equal(sizeof(want) / sizeof(want[0]), l->n_rest);
    for (int i = 0; i < l->n_rest; i++)
        assert_string_equal(want[i], l->rest[i]);
    done(l);

    /* A prefix of a setting's name is not that setting. */
    l = load((const char *[]){"--list", "x", "--listenx=1", "--thread=3", NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("127.0.0.1:8080", l->cfg.listen[0]);
    assert_int_equal(0, l->cfg.threads);
    assert_int_equal(4, l->n_rest);
    assert_string_equal("--list", l->rest[0]);
    assert_string_equal("x", l->rest[1]);
    assert_string_equal("--listenx=1", l->rest[2]);
    assert_string_equal("--thread=3", l->rest[3]);
    done(l);

    /* The borrowed pointers are argv's own. */
    const char *argv[] = {"user", "--timeout", "5", "alice", NULL};
    l = load(argv);
    assert_int_equal(0, l->rc);
    assert_int_equal(2, l->n_rest);
    assert_ptr_equal(argv[0], l->rest[0]);
    assert_ptr_equal(argv[3], l->rest[1]);
    done(l);
}

static void test_env(void **state)
{
    setenv("SPYPIXEL_LISTEN", "[::]:8443", 1);
    setenv("SPYPIXEL_MAX_CONNECTIONS", "77", 1);
    setenv("SPYPIXEL_MAX_CONNECTIONS_PER_IP", "12", 1);
    setenv("SPYPIXEL_METRICS_PUBLIC", "true", 1);
    setenv("SPYPIXEL_SELF_IP_WINDOW", "30", 1);
    setenv("SPYPIXEL_ANONYMIZE_IP", "yes", 1);
    setenv("SPYPIXEL_NO_GEOIP", "1", 1);
    setenv("SPYPIXEL_GEOIP", "a.mmdb, b.mmdb ,,c.mmdb,", 1);
    setenv("SPYPIXEL_TRUSTED_PROXY", "10.0.0.0/8,::1", 1);
    setenv("SPYPIXEL_WEBHOOK", "https://h/x?a=1", 1);
    setenv("SPYPIXEL_PUBLIC_URL", "", 1); /* empty: not set */
    setenv("SPYPIXEL_DATA", "/srv/spy", 1);
    load_t *l = load((const char *[]){NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("[::]:8443", l->cfg.listen[0]);
    assert_string_equal("/srv/spy", l->cfg.data_dir);
    assert_int_equal(77, l->cfg.max_connections);
    assert_int_equal(12, l->cfg.max_connections_per_ip);
    assert_true(l->cfg.metrics_public);
    assert_int_equal(30, l->cfg.self_ip_window);
    assert_true(l->cfg.anonymize_ip);
    assert_true(l->cfg.no_geoip);
    assert_false(l->cfg.sync_full);
    assert_string_equal("", l->cfg.public_url);
    assert_int_equal(3, l->cfg.n_geoip);
    assert_string_equal("a.mmdb", l->cfg.geoip[0]);
    assert_string_equal("b.mmdb", l->cfg.geoip[1]);
    assert_string_equal("c.mmdb", l->cfg.geoip[2]);
    assert_int_equal(2, l->cfg.n_trusted_proxy);
    assert_int_equal(96 + 8, l->cfg.trusted_proxy[0].prefix);
    assert_int_equal(128, l->cfg.trusted_proxy[1].prefix);
    assert_int_equal(1, l->cfg.n_webhook);
    assert_string_equal("https://h/x?a=1", l->cfg.webhook[0]);
    done(l);

    /* The variable's name is the flag's, upper case, '-' as '_'. */
    clear_env();
    setenv("SPYPIXEL_MAX-CONNECTIONS", "5", 1);
    setenv("SPYPIXEL_max_connections", "6", 1);
    setenv("SPYPIXEL_LISTEN_", "x:1", 1);
    l = load((const char *[]){NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(4096, l->cfg.max_connections);
    assert_string_equal("127.0.0.1:8080", l->cfg.listen[0]);
    done(l);

    clear_env();
    setenv("SPYPIXEL_THREADS", "many", 1);
    load_fails((const char *[]){NULL}, "'many'");
    clear_env();
    setenv("SPYPIXEL_SYNC_FULL", "perhaps", 1);
    load_fails((const char *[]){NULL}, "perhaps");
    clear_env();
    setenv("SPYPIXEL_TRUSTED_PROXY", "10.0.0.0/8,not-an-address", 1);
    load_fails((const char *[]){NULL}, "not-an-address");
}

static void test_file(void **state)
{
    char path[128];
    write_file("good.conf",
               "# spypixel settings\n"
               "\n"
               "   \t\n"
               "listen = 0.0.0.0:9090\n"
               "  # an indented comment\n"
               "data=/var/spy\n"
               "\tthreads\t=\t3  \n"
               "anonymize-ip = true\n"
               "geoip = one.mmdb\n"
               "geoip = two.mmdb\n"
               "trusted-proxy = 192.0.2.0/24\n"
               "pg = host=db port=5432\n"
               "public-url =\n"
               "log-level = warn",
               path, sizeof(path));
    load_t *l = load((const char *[]){"--config", path, NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(0, l->n_rest);
    assert_string_equal("0.0.0.0:9090", l->cfg.listen[0]);
    assert_string_equal("/var/spy", l->cfg.data_dir);
    assert_int_equal(3, l->cfg.threads);
    assert_true(l->cfg.anonymize_ip);
    assert_int_equal(2, l->cfg.n_geoip);
    assert_string_equal("one.mmdb", l->cfg.geoip[0]);
    assert_string_equal("two.mmdb", l->cfg.geoip[1]);
    assert_int_equal(1, l->cfg.n_trusted_proxy);
    assert_int_equal(96 + 24, l->cfg.trusted_proxy[0].prefix);
    assert_string_equal("host=db port=5432", l->cfg.pg);
    assert_string_equal("", l->cfg.public_url);
    assert_string_equal("warn", l->cfg.log_level); /* last line without a newline */
    done(l);

    /* --config=FILE, and SPYPIXEL_CONFIG. */
    char flag[160];
    snprintf(flag, sizeof(flag), "--config=%s", path);
    l = load((const char *[]){"serve", flag, NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("0.0.0.0:9090", l->cfg.listen[0]);
    assert_int_equal(1, l->n_rest);
    assert_string_equal("serve", l->rest[0]);
    done(l);

    setenv("SPYPIXEL_CONFIG", path, 1);
    l = load((const char *[]){NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("0.0.0.0:9090", l->cfg.listen[0]);
    done(l);

    /* After "--" it is an argument like any other. */
    unsetenv("SPYPIXEL_CONFIG");
    l = load((const char *[]){"--", "--config", path, NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("127.0.0.1:8080", l->cfg.listen[0]);
    assert_int_equal(2, l->n_rest);
    assert_string_equal("--config", l->rest[0]);
    assert_string_equal(path, l->rest[1]);
    done(l);
    setenv("SPYPIXEL_CONFIG", path, 1);

    /* A --config flag wins over SPYPIXEL_CONFIG. */
    char other[128];
    write_file("other.conf", "listen = 10.0.0.1:1\n", other, sizeof(other));
    l = load((const char *[]){"--config", other, NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("10.0.0.1:1", l->cfg.listen[0]);
    assert_int_equal(0, l->cfg.threads);
    done(l);
}

static void test_file_errors(void **state)
{
    char path[128], want[160];

    write_file("noeq.conf", "# ok\nlisten = a:1\nthis line has no equals sign\nthreads = 2\n", path,
               sizeof(path));
    snprintf(want, sizeof(want), "%s:3:", path);
    load_fails((const char *[]){"--config", path, NULL}, want);

    write_file("unknown.conf", "\nlistne = a:1\n", path, sizeof(path));
    snprintf(want, sizeof(want), "%s:2: unknown setting 'listne'", path);
    load_fails((const char *[]){"--config", path, NULL}, want);

    /* A bad value names the file and line too. */
    write_file("badint.conf", "listen = a:1\n\n# comment\nthreads = lots\n", path, sizeof(path));
    snprintf(want, sizeof(want), "%s:4:", path);
    load_fails((const char *[]){"--config", path, NULL}, want);
    load_fails((const char *[]){"--config", path, NULL}, "'lots'");

    /* Flag syntax is not file syntax. */
    write_file("dashes.conf", "--listen = a:1\n", path, sizeof(path));
    load_fails((const char *[]){"--config", path, NULL}, "unknown setting");

    snprintf(path, sizeof(path), "%s/missing.conf", dir);
    load_fails((const char *[]){"--config", path, NULL}, path);

    /* --config with no file after it is an error, not silently nothing. */
    load_fails((const char *[]){"--listen", "a:1", "--config", NULL}, "--config");
}

/* A line is read whole, however long: the tail of a long comment is not a setting, a long
 * value is not cut in two, and a NUL is an error rather than the line's end. */
static void test_file_long_lines(void **state)
{
    char path[128], text[8192];
    size_t n = 0;
    text[n++] = '#';
    while (n < 2047)
        text[n++] = 'x'; /* the old line buffer's size, less its NUL */
    n += (size_t)snprintf(text + n, sizeof(text) - n, "listen = 0.0.0.0:80\nthreads = 3\n");
    write_file("comment.conf", text, path, sizeof(path));
    load_t *l = load((const char *[]){"--config", path, NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(1, l->cfg.n_listen);
    assert_string_equal("127.0.0.1:8080", l->cfg.listen[0]);
    assert_int_equal(3, l->cfg.threads);
    done(l);

    n = (size_t)snprintf(text, sizeof(text), "webhook = https://example.com/");
    while (n < 5000)
        text[n++] = 'a';
    snprintf(text + n, sizeof(text) - n, "\nthreads = 4\n");
    write_file("long.conf", text, path, sizeof(path));
    l = load((const char *[]){"--config", path, NULL});
    assert_int_equal(0, l->rc);
    assert_int_equal(1, l->cfg.n_webhook);
    assert_int_equal(5000 - strlen("webhook = "), strlen(l->cfg.webhook[0]));
    assert_int_equal(4, l->cfg.threads);
    done(l);

    snprintf(path, sizeof(path), "%s/nul.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    static const char nul[] = "threads = 2\nlisten = 10.0.0.1:1\0 # the rest\n";
    fwrite(nul, 1, sizeof(nul) - 1, f);
    fclose(f);
    char want[160];
    snprintf(want, sizeof(want), "%s:2: a NUL byte", path);
    load_fails((const char *[]){"--config", path, NULL}, want);
}

static void test_precedence(void **state)
{
    char path[128];
    write_file("prec.conf",
               "listen = file:1\n"
               "threads = 1\n"
               "timeout = 11\n"
               "retention = 111\n"
               "geoip = file.mmdb\n"
               "trusted-proxy = 10.0.0.0/8\n"
               "webhook = https://file/\n",
               path, sizeof(path));
    setenv("SPYPIXEL_LISTEN", "env:2", 1);
    setenv("SPYPIXEL_THREADS", "2", 1);
    setenv("SPYPIXEL_RETENTION", "222", 1);
    setenv("SPYPIXEL_GEOIP", "env1.mmdb,env2.mmdb", 1);

    /* Flags win over both, wherever --config stands among them. */
    load_t *l = load((const char *[]){"--listen", "flag:3", "--geoip", "flag.mmdb", "--config",
                                      path, "--trusted-proxy", "::1", NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("flag:3", l->cfg.listen[0]); /* flag > env > file */
    assert_int_equal(2, l->cfg.threads);             /* env > file */
    assert_int_equal(11, l->cfg.timeout);            /* file > default */
    assert_int_equal(222, l->cfg.retention);         /* env > file */
    assert_int_equal(16384, l->cfg.batch_max);       /* default */

    /* A list given by a stronger source replaces the weaker one's. */
    assert_int_equal(1, l->cfg.n_geoip);
    assert_string_equal("flag.mmdb", l->cfg.geoip[0]);
    assert_int_equal(1, l->cfg.n_trusted_proxy);
    assert_int_equal(128, l->cfg.trusted_proxy[0].prefix);
    assert_false(l->cfg.trusted_proxy[0].addr.v4);
    /* A list set only in the file stays. */
    assert_int_equal(1, l->cfg.n_webhook);
    assert_string_equal("https://file/", l->cfg.webhook[0]);
    done(l);

    l = load((const char *[]){"--config", path, NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("env:2", l->cfg.listen[0]);
    assert_int_equal(2, l->cfg.n_geoip);
    assert_string_equal("env1.mmdb", l->cfg.geoip[0]);
    assert_string_equal("env2.mmdb", l->cfg.geoip[1]);
    assert_int_equal(1, l->cfg.n_trusted_proxy);
    assert_int_equal(96 + 8, l->cfg.trusted_proxy[0].prefix);
    done(l);
}

static void test_store(void **state)
{
    load_t *l = load((const char *[]){"--store", "postgres", NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("postgres", l->cfg.store);
    done(l);

    l = load((const char *[]){"--store=sqlite", NULL});
    assert_int_equal(0, l->rc);
    assert_string_equal("sqlite", l->cfg.store);
    done(l);

    load_fails((const char *[]){"--store", "mysql", NULL}, "--store: expected sqlite or postgres");
    load_fails((const char *[]){"--store", "SQLite", NULL}, "'SQLite'");
    load_fails((const char *[]){"--store=", NULL}, "--store");
    load_fails((const char *[]){"--store", "postgresql-and-more", NULL}, "--store");

    /* The check applies to the result, whichever source set it. */
    setenv("SPYPIXEL_STORE", "oracle", 1);
    load_fails((const char *[]){NULL}, "'oracle'");
    l = load((const char *[]){"--store", "postgres", NULL});
    assert_int_equal(0, l->rc);
    done(l);

    char path[128];
    write_file("store.conf", "store = mongo\n", path, sizeof(path));
    unsetenv("SPYPIXEL_STORE");
    load_fails((const char *[]){"--config", path, NULL}, "'mongo'");
}

static void test_usage(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    sp_config_usage(f, SP_CONFIG_ALL);
    fclose(f);
    const char *want[] = {"--listen ADDRESS",
                          "--tls-cert FILE",
                          "--tls-key FILE",
                          "--log-format FORMAT",
                          "--data DIR",
                          "--store NAME",
                          "--pg CONNINFO",
                          "--geoip FILE.mmdb",
                          "--no-geoip ",
                          "--trusted-proxy CIDR",
                          "--webhook URL",
                          "--apple-egress FILE",
                          "--public-url URL",
                          "--threads N",
                          "--max-connections N",
                          "--timeout SECONDS",
                          "--header-timeout SECONDS",
                          "--max-connections-per-ip N",
                          "--body-memory MIB",
                          "--metrics-public ",
                          "--batch-max N",
                          "--retention DAYS",
                          "--self-ip-window MINUTES",
                          "--anonymize-ip ",
                          "--sync-full ",
                          "--auto-create-campaigns ",
                          "--unknown-campaigns-max N",
                          "--unknown-opens-max N",
                          "--log-level LEVEL",
                          "--config FILE",
                          "SPYPIXEL_"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(text, want[i]))
            fail_msg("usage does not mention '%s'", want[i]);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cidr_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
