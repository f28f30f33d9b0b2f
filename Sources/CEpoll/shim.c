// CEpoll shim: out-of-line helpers (the header holds the static inline ones).
#include "CEpoll.h"
