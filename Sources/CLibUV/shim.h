#include <uv.h>
// malloc_trim (glibc): the memory engine hands forgotten channels' pages back to the OS.
#include <malloc.h>
