// --help for every binary of the project: Abseil shows by default only the
// flags defined in a file named like the program, which none of ours is, so
// --help printed "No flags matched". ConfigureHelp makes --help (and
// --helpshort) list every flag defined in this project's sources, with its
// default; Abseil's own flags stay under --helpfull.
#ifndef MOA_LIB_SERVER_HELP_H_
#define MOA_LIB_SERVER_HELP_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moa::server {

// Call before absl::ParseCommandLine.
void ConfigureHelp();

// "  --name (default: x)\n      help\n" for each named flag, in order.
std::string DescribeFlags(const std::vector<std::string>& names);

}  // namespace moa::server

#endif  // MOA_LIB_SERVER_HELP_H_
