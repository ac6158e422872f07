/*
 * version.c - segpool_version(): the version the library was built as.
 *
 * Owns nothing mutable.  The string is SEGPOOL_VERSION_STRING from the
 * generated segpool_version.h, so a program can tell the header it was
 * compiled with (the macros) from the library it runs with (this call).
 */
#include "segpool.h"

const char *segpool_version(void) { return SEGPOOL_VERSION_STRING; }
