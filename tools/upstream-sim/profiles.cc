#include "tools/upstream-sim/profiles.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/base/json.h"
#include "lib/base/status_macros.h"

namespace moa::sim {
namespace {

absl::Status Error(absl::string_view source, const YAML::Node& node, absl::string_view what) {
  const YAML::Mark m = node.Mark();
  return absl::InvalidArgumentError(
      absl::StrCat(source, ":", m.line + 1, ":", m.column + 1, ": ", what));
}

absl::Status CheckKeys(absl::string_view source, const YAML::Node& node, absl::string_view path,
                       const std::set<std::string>& allowed) {
  if (!node.IsMap()) return Error(source, node, absl::StrCat(path, " must be a mapping"));
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    if (allowed.count(key) == 0) {
      return Error(source, kv.first,
                   absl::StrCat("unknown key '", key, "' in ", path,
                                " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> Number(absl::string_view source, const YAML::Node& node,
                              absl::string_view path, double min, double max) {
  double v;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, v) || v < min || v > max) {
    return Error(source, node, absl::StrCat(path, " must be a number in [", min, ", ", max, "]"));
  }
  return v;
}

absl::StatusOr<Profile> ParseProfile(absl::string_view source, const YAML::Node& node,
                                     const Profile& base, const std::string& path) {
  MOA_RETURN_IF_ERROR(CheckKeys(source, node, path,
                                {"time_to_first_token", "tokens_per_second", "answer_tokens",
                                 "answer_text", "answer_text_share", "tool_calls", "tool_arguments",
                                 "structured_answers", "reasoning_tokens", "faults"}));
  Profile p = base;
  if (const YAML::Node ttft = node["time_to_first_token"]) {
    if (ttft.IsMap()) {
      MOA_RETURN_IF_ERROR(
          CheckKeys(source, ttft, path + ".time_to_first_token", {"median", "sigma"}));
      if (!ttft["median"])
        return Error(source, ttft, path + ".time_to_first_token.median is required");
      MOA_ASSIGN_OR_RETURN(p.ttft_median_seconds,
                           Number(source, ttft["median"], "median", 0, 3600));
      p.ttft_sigma = 0;
      if (ttft["sigma"]) {
        MOA_ASSIGN_OR_RETURN(p.ttft_sigma, Number(source, ttft["sigma"], "sigma", 0, 10));
      }
    } else {
      MOA_ASSIGN_OR_RETURN(p.ttft_median_seconds,
                           Number(source, ttft, path + ".time_to_first_token", 0, 3600));
      p.ttft_sigma = 0;
    }
  }
  if (node["tokens_per_second"]) {
    MOA_ASSIGN_OR_RETURN(p.tokens_per_second, Number(source, node["tokens_per_second"],
                                                     path + ".tokens_per_second", 0.001, 1e6));
  }
  if (node["answer_tokens"]) {
    MOA_ASSIGN_OR_RETURN(double n,
                         Number(source, node["answer_tokens"], path + ".answer_tokens", 1, 100000));
    p.answer_tokens = static_cast<int>(n);
  }
  if (const YAML::Node t = node["answer_text"]) {
    if (!t.IsScalar() || t.Scalar().empty() || t.Scalar().size() > 65536) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", path, ".answer_text must be 1 to 65536 characters of text"));
    }
    p.answer_text = t.Scalar();
  }
  if (node["answer_text_share"]) {
    MOA_ASSIGN_OR_RETURN(p.answer_text_share, Number(source, node["answer_text_share"],
                                                     path + ".answer_text_share", 0, 1));
  }
  if (const YAML::Node t = node["tool_calls"]) {
    if (!t.IsScalar() || !YAML::convert<bool>::decode(t, p.tool_calls)) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", path, ".tool_calls must be true or false"));
    }
  }
  if (const YAML::Node t = node["tool_arguments"]) {
    absl::StatusOr<moa::json::Json> args = t.IsScalar() && t.Scalar().size() <= 65536
                                               ? moa::json::Parse(t.Scalar())
                                               : absl::InvalidArgumentError("not text");
    if (!args.ok() || !args->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, ": ", path, ".tool_arguments must be a JSON object's text (at most 64 KiB)"));
    }
    p.tool_arguments = t.Scalar();
  }
  if (node["structured_answers"]) {
    MOA_ASSIGN_OR_RETURN(p.structured_answers, Number(source, node["structured_answers"],
                                                      path + ".structured_answers", 0, 1));
  }
  if (node["reasoning_tokens"]) {
    MOA_ASSIGN_OR_RETURN(
        double n, Number(source, node["reasoning_tokens"], path + ".reasoning_tokens", 0, 100000));
    p.reasoning_tokens = static_cast<int>(n);
  }
  if (const YAML::Node f = node["faults"]) {
    std::string fp = path + ".faults";
    MOA_RETURN_IF_ERROR(CheckKeys(source, f, fp,
                                  {"http_500", "http_429", "hang", "reset", "malformed",
                                   "retry_after_seconds", "spare_continuations"}));
    FaultRates& r = p.faults;
    auto rate = [&](const char* key, double& out) -> absl::Status {
      if (!f[key]) return absl::OkStatus();
      MOA_ASSIGN_OR_RETURN(out, Number(source, f[key], absl::StrCat(fp, ".", key), 0, 1));
      return absl::OkStatus();
    };
    MOA_RETURN_IF_ERROR(rate("http_500", r.http_500));
    MOA_RETURN_IF_ERROR(rate("http_429", r.http_429));
    MOA_RETURN_IF_ERROR(rate("hang", r.hang));
    MOA_RETURN_IF_ERROR(rate("reset", r.reset));
    MOA_RETURN_IF_ERROR(rate("malformed", r.malformed));
    if (const YAML::Node spare = f["spare_continuations"]) {
      if (!spare.IsScalar() || !YAML::convert<bool>::decode(spare, r.spare_continuations)) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": ", fp, ".spare_continuations must be true or false"));
      }
    }
    if (f["retry_after_seconds"]) {
      MOA_ASSIGN_OR_RETURN(r.retry_after_seconds, Number(source, f["retry_after_seconds"],
                                                         fp + ".retry_after_seconds", 0, 3600));
    }
    if (r.http_500 + r.http_429 + r.hang + r.reset + r.malformed > 1.0 + 1e-9) {
      return Error(source, f, fp + ": the fault rates add up to more than 1");
    }
  }
  return p;
}

}  // namespace

absl::Duration Profile::SampleTimeToFirstToken(std::mt19937_64& rng) const {
  double seconds = ttft_median_seconds;
  if (ttft_sigma > 0) {
    std::normal_distribution<double> normal(0, 1);
    seconds = ttft_median_seconds * std::exp(ttft_sigma * normal(rng));
  }
  return absl::Seconds(seconds);
}

const Profile& Profiles::For(absl::string_view model) const {
  auto it = models.find(model);
  return it == models.end() ? default_profile : it->second;
}

absl::StatusOr<Profiles> ParseProfiles(absl::string_view yaml, absl::string_view source) {
  Profiles profiles;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root || root.IsNull()) return profiles;
    MOA_RETURN_IF_ERROR(CheckKeys(source, root, "the profiles file", {"default", "models"}));
    if (root["default"]) {
      MOA_ASSIGN_OR_RETURN(profiles.default_profile,
                           ParseProfile(source, root["default"], Profile{}, "default"));
    }
    if (const YAML::Node models = root["models"]) {
      if (!models.IsMap()) return Error(source, models, "models must be a mapping");
      for (const auto& kv : models) {
        std::string name = kv.first.as<std::string>();
        MOA_ASSIGN_OR_RETURN(
            Profile p, ParseProfile(source, kv.second, profiles.default_profile, "models." + name));
        profiles.models.emplace(name, p);
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  return profiles;
}

absl::StatusOr<Profiles> LoadProfiles(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read profiles file ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseProfiles(text.str(), path);
}

}  // namespace moa::sim
