// Invariant guards. EGRESSD_ASSERT is for debug builds; EGRESSD_CHECK always runs and aborts, for states
// in which going on would be unsafe. Never use either on anything read from a socket, file or /proc.
#pragma once

#include <cstdio>
#include <cstdlib>

#define EGRESSD_CHECK(cond)                                                                    \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "egressd: check failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

#ifdef NDEBUG
#define EGRESSD_ASSERT(cond) ((void)0)
#else
#define EGRESSD_ASSERT(cond) EGRESSD_CHECK(cond)
#endif
