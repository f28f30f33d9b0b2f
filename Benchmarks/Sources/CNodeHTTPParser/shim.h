// nodejs http-parser 2.9 from Debian's libhttp-parser-dev.
#include <http_parser.h>
