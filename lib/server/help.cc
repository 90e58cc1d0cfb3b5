#include "lib/server/help.h"

#include "absl/flags/reflection.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moa::server {
namespace {

bool OurFile(absl::string_view file) {
  for (absl::string_view dir : {"services/", "tools/", "lib/", "bench/"}) {
    if (absl::StrContains(file, dir)) return true;
  }
  return false;
}

}  // namespace

void ConfigureHelp() {
  absl::FlagsUsageConfig config;
  config.contains_helpshort_flags = OurFile;
  config.contains_help_flags = OurFile;
  // "Flags from services/orchestrator/main.cc", not the build's absolute path.
  config.normalize_filename = [](absl::string_view file) -> std::string {
    for (absl::string_view dir : {"services/", "tools/", "lib/", "bench/"}) {
      if (size_t at = file.find(dir); at != absl::string_view::npos) {
        return std::string(file.substr(at));
      }
    }
    return std::string(file);
  };
  absl::SetFlagsUsageConfig(config);
}

std::string DescribeFlags(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    std::string def = flag->DefaultValue();
    absl::StrAppend(&out, "  --", name, " (default: ", def.empty() ? "\"\"" : def, ")\n      ",
                    flag->Help(), "\n");
  }
  return out;
}

}  // namespace moa::server
