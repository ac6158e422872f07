/*
 * segshim_config.c - segshim-config, the library's own option parser as a
 * command, for the scripts/segshim wrapper.
 *
 *   segshim-config NAME VALUE   exit 0 when SEGSHIM_NAME=VALUE is accepted,
 *                               else print the library's reason, exit 1
 *   segshim-config --list       every option: NAME, kind, help (tab-separated)
 *   segshim-config --version    the library's version
 *
 * Owns nothing: it calls config_parse_value() and walks SEGPOOL_OPTIONS, the
 * same table and parser libsegshim.so uses at start-up, so the wrapper never
 * accepts a value the library would reject, or the reverse.  Exit 2 is a usage
 * error.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "segpool.h"

#define CONFIG_TOOL_PREFIX "SEGSHIM_"

static int config_tool_usage(FILE *out) {
    fputs("Usage: segshim-config NAME VALUE | --list | --version\n"
          "Check a value of SEGSHIM_NAME with libsegshim's own parser: exit 0 when\n"
          "it is accepted, else print the reason and exit 1.  NAME may keep its\n"
          "SEGSHIM_ prefix.  --list prints every option (name, kind, help).\n",
          out);
    return out == stdout ? 0 : 2;
}

static const char *config_tool_kind(config_kind_t kind) {
    switch (kind) {
    case CONFIG_SIZE: return "size";
    case CONFIG_POW2: return "pow2";
    case CONFIG_INT: return "int";
    case CONFIG_BOOL: return "bool";
    case CONFIG_MODE: return "mode";
    case CONFIG_STATS: return "stats";
    case CONFIG_SIGNAL: return "signal";
    }
    return "unknown";
}

static int config_tool_list(void) {
#define CONFIG_TOOL_LINE(NAME, field, kind, def, lo, hi, help) \
    printf("%s\t%s\t%s\n", #NAME, config_tool_kind(kind), help);
    SEGPOOL_OPTIONS(CONFIG_TOOL_LINE)
#undef CONFIG_TOOL_LINE
    return 0;
}

static int config_tool_check(const char *name, const char *value) {
    config_t cfg;
    char why[128];
    if (strncmp(name, CONFIG_TOOL_PREFIX, strlen(CONFIG_TOOL_PREFIX)) == 0)
        name += strlen(CONFIG_TOOL_PREFIX);
    config_defaults(&cfg);
    if (config_parse_value(&cfg, name, value, why, sizeof(why)) == 0)
        return 0;
    printf("%s\n", why);
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", segpool_version());
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--list") == 0)
        return config_tool_list();
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return config_tool_usage(stdout);
    if (argc == 3)
        return config_tool_check(argv[1], argv[2]);
    return config_tool_usage(stderr);
}
